"""Per-level norms in heads whose convolutions are shared across pyramid levels.

RetinaNet's towers run the same convolutions on every FPN level (P3-P7). A per-sample norm (GN,
FRN) can be shared too, as mmdet's and detectron2's GN heads share it. A norm with batch
statistics cannot: one BN would normalise each level by that level's batch statistics in
training but by running statistics averaged over all five levels in eval (their scales differ
by about the level stride), and MABN's moving averages and iteration counter would advance five
times per step with the levels' statistics mixed. So, as detectron2's RetinaNetHead does for
BN/SyncBN ("domain-specific" norms), every batch-statistics norm of such a head is one norm per
level (:class:`PerLevelNorm`) while the convolutions stay shared. ``convert_norm`` makes the
head a ``NormDetRetinaHead`` for those norms (the norm table's ``batch_stats``).

These norms do not fold into the (shared) convolution before them at inference.
"""
import copy

from mmdet.models.dense_heads import RetinaHead
from mmengine.registry import MODELS
from torch import nn


class PerLevelNorm(nn.Module):
    """One copy of ``norm`` per pyramid level; ``level`` (set by the head) picks which runs."""

    def __init__(self, norm: nn.Module, num_levels: int):
        super().__init__()
        self.norms = nn.ModuleList(copy.deepcopy(norm) for _ in range(num_levels))
        self.level = None

    def forward(self, x):
        if self.level is None:
            raise RuntimeError('PerLevelNorm: the head must set the pyramid level before calling '
                               'it (a NormDetRetinaHead does)')
        return self.norms[self.level](x)


def per_level_norms(module: nn.Module, num_levels: int) -> int:
    """Replace the norm of every mmcv ConvModule in ``module`` by a :class:`PerLevelNorm`;
    returns how many."""
    from mmcv.cnn import ConvModule
    count = 0
    for m in module.modules():
        if isinstance(m, ConvModule) and m.with_norm and not isinstance(m.norm, PerLevelNorm):
            setattr(m, m.norm_name, PerLevelNorm(m.norm, num_levels))
            count += 1
    return count


def set_level(module: nn.Module, level: int) -> None:
    for m in module.modules():
        if isinstance(m, PerLevelNorm):
            m.level = level


@MODELS.register_module()
class NormDetRetinaHead(RetinaHead):
    """mmdet's RetinaHead whose tower norms are per level (``per_level_norm=True``), the
    convolutions shared; see the module docstring."""

    def __init__(self, *args, per_level_norm: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.per_level_norm = per_level_norm
        if per_level_norm:
            per_level_norms(self, self.prior_generator.num_levels)

    def forward(self, x):
        outs = []
        for level, feat in enumerate(x):
            set_level(self, level)
            outs.append(self.forward_single(feat))
        return tuple(map(list, zip(*outs)))
