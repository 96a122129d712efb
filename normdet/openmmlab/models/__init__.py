"""The models' level of the glue: normdet's layers and detector parts in mmdet's MODELS registry.

    norm_cfg=dict(type='FRN' | 'MABN' | 'DNB' | 'DNC' | 'RBN' | 'NormDetSyncBN', ...)
    conv_cfg=dict(type='CenConv')

The layers' names come from the norm table (``normdet.norms``); none replaces an mmdet or mmcv name
(normdet's SyncBN, which also runs on CPU processes, is ``NormDetSyncBN`` beside mmcv's
``SyncBN``). mmcv's ``build_norm_layer``/``build_conv_layer`` find them through mmdet's scope, as
every mmdet backbone, neck and head builds its norms. Parameter-name abbreviations come from each
class's ``_abbr_`` (frn, mabn, dnb, dnc, bn).

- ``convert``: the rewrite of a config's norms (``convert_norm``);
- ``norm_act``: the ``NormAct<Detector>`` variants (FRN+TLU carries its activation);
- ``heads``: per-level norms in heads shared across pyramid levels (``NormDetRetinaHead``);
- ``preprocessor``: RBN's online input normalisation (``RBNDetDataPreprocessor``);
- ``placed``: a MobileNetV2 with the norm in its depthwise or 1x1 convolutions only
  (``NormDetMobileNetV2``, the placement ablation);
- ``pretrained``: a BN-pretrained ``Pretrained`` init into any norm (``NormDetPretrained``);
- ``folded``: a detector with its norms folded into its convolutions (``NormDetFolded``, the
  model type of the configs tools/deploy.py writes).
"""
from mmengine.registry import MODELS

from ...layers import CenConv2d
from ...norms import NORMS
from . import folded, heads, norm_act, placed, preprocessor, pretrained  # noqa: F401  (registers)
from .convert import check_norm_types, convert_norm


def register_layers() -> None:
    """Register every layer of the norm table not registered yet (idempotent)."""
    for norm in NORMS.values():
        if norm.layer is not None and MODELS.get(norm.type) is not norm.layer:
            MODELS.register_module(name=norm.type, module=norm.layer, force=True)
    if MODELS.get('CenConv') is not CenConv2d:
        MODELS.register_module(name='CenConv', module=CenConv2d, force=True)


register_layers()

__all__ = ['check_norm_types', 'convert_norm', 'register_layers']
