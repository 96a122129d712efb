"""Fold eval-mode normalizations into the convolution before them, for inference.

In eval mode BN, SyncBN, RBN, MABN and DN-C are a per-channel affine map y = s * x + t, given by
each norm's ``eval_affine`` in ``normdet.norms``:

    BN / SyncBN / RBN   s = gamma / sqrt(running_var + eps)   t = beta - running_mean * s
    MABN                s = gamma / sqrt(running_var + eps)   t = beta          (no mean)
    DN-C                BN's, with gamma and beta plus the SC module's output on the running
                        statistics (a constant in eval)

so conv -> norm becomes one conv with weight W * s (per output channel) and bias b * s + t, and
the norm an ``nn.Identity``. A weight-centralised ``CenConv2d`` first becomes a plain ``nn.Conv2d``
holding its centred weight W - mean(W) (centring commutes with the per-channel scale), so the
centring costs nothing at inference either, whether or not a norm follows.

Not folded: the per-level norms of a head whose convolution is shared by the pyramid levels
(``normdet.openmmlab.models.heads.PerLevelNorm``, RetinaNet's towers with batch-statistics norms): one conv cannot
hold five affines. Also not folded, because no identity allows it (``eval_affine`` None): FRN (x * rsqrt(mean(x^2)) is
per sample and invariant to the conv's scale, so its affine cannot move into the conv before it;
with TLU after it, not into the conv after either), GN (per-sample statistics), DN-B (per-sample
affine).

Pairs are found as mmcv's ``fuse_conv_bn`` finds them, a norm and the convolution registered right
before it in the same parent module with matching channels, and then only where the parent's
forward feeds that conv's output straight into the norm and nowhere else: known for
``nn.Sequential``, mmcv's ConvModule (conv before norm) and the ResNets' blocks, read from the
code (``torch.fx``) for any other module. A norm that does not directly follow its conv (for
example ``bn(conv(x) + x)``), or whose parent's forward cannot be read, is not folded. ``fold_norms`` returns the
number of folds; tests/test_fuse.py checks output equality on SSDLite, RetinaNet and Mask R-CNN. Whole detectors
are built, folded, saved and loaded by ``normdet.openmmlab.deploy`` (tools/deploy.py).
"""
import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import CenConv2d
from .table import norm_of


def affine_of(norm) -> tuple:
    """(s, t) with norm(x) == s * x + t per channel, in eval mode."""
    return norm_of(norm).eval_affine(norm)


def _foldable(norm) -> bool:
    if isinstance(norm, _BatchNorm) and not (norm.track_running_stats
                                             and norm.running_var is not None):
        return False
    spec = norm_of(norm)
    return spec is not None and spec.eval_affine is not None


@torch.no_grad()
def plain_conv(conv: nn.Conv2d, scale=None, shift=None) -> nn.Conv2d:
    """A plain Conv2d computing ``scale * conv(x) + shift`` (CenConv2d's centring included)."""
    w = conv.centred_weight() if isinstance(conv, CenConv2d) else conv.weight
    b = conv.bias if conv.bias is not None else torch.zeros_like(w[:, 0, 0, 0])
    if scale is not None:
        w, b = w * scale.view(-1, 1, 1, 1), b * scale + shift
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, conv.dilation, conv.groups, bias=True,
                    padding_mode=conv.padding_mode, device=w.device, dtype=w.dtype)
    new.weight.copy_(w)
    new.bias.copy_(b)
    return new


def _norm_runs_after_conv(parent) -> bool:
    order = getattr(parent, 'order', None)  # mmcv ConvModule
    return not (isinstance(order, tuple) and 'norm' in order and 'conv' in order
                and order.index('norm') < order.index('conv'))


# modules whose forward feeds each conv straight into the norm registered after it: nn.Sequential,
# mmcv's ConvModule, mmdet's and torchvision's ResNets and their blocks
DIRECT = ('ConvModule', 'BasicBlock', 'Bottleneck', 'ResNet', 'ResNetV1d')


class _ChildrenAsLeaves(fx.Tracer):
    def __init__(self, root):
        super().__init__()
        self.root_module = root

    def is_leaf_module(self, m, qualname) -> bool:
        return m is not self.root_module


def _feeds_directly(parent, conv: str, norm: str) -> bool:
    """Whether ``parent``'s forward computes ``norm(conv(...))`` with nothing between and nothing
    else reading the conv's output; read from its code (torch.fx), or known for the modules of
    ``DIRECT``. Unknown (a forward that cannot be traced) counts as no."""
    if isinstance(parent, nn.Sequential) or type(parent).__name__ in DIRECT:
        return _norm_runs_after_conv(parent)
    try:
        graph = _ChildrenAsLeaves(parent).trace(parent)
    except Exception:  # data-dependent control flow and the like
        return False
    calls = {n.target: n for n in graph.nodes if n.op == 'call_module'}
    conv_node, norm_node = calls.get(conv), calls.get(norm)
    return (conv_node is not None and norm_node is not None
            and list(norm_node.args[:1]) == [conv_node] and len(conv_node.users) == 1)


@torch.no_grad()
def fold_norms(model: nn.Module) -> int:
    """Fold every eval-mode norm that has an ``eval_affine`` (BN, SyncBN, RBN, MABN, DN-C) into
    its preceding conv, in place; returns how many. Raises if a foldable norm is in training mode (its output then depends on the batch)."""
    training = [n for n, m in model.named_modules() if _foldable(m) and m.training]
    if training:
        raise ValueError(f'fold_norms needs eval mode; call model.eval() first ({training[0]} is '
                         'training)')
    folded = 0
    for parent in list(model.modules()):
        prev = None  # (name, conv) registered just before
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                prev = (name, child)
            elif (prev is not None and _foldable(child)
                  and prev[1].out_channels == child.num_features
                  and _feeds_directly(parent, prev[0], name)):
                setattr(parent, prev[0], plain_conv(prev[1], *affine_of(child)))
                setattr(parent, name, nn.Identity())
                folded, prev = folded + 1, None
            else:
                prev = None
    for parent in list(model.modules()):  # centred convs without a norm after them
        for name, child in list(parent.named_children()):
            if isinstance(child, CenConv2d):
                setattr(parent, name, plain_conv(child))
    return folded
