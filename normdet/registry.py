"""Registers normdet's layers in MMEngine's root MODELS registry, under names of their own, so
that mmcv's build_norm_layer / build_conv_layer and every mmdet backbone, neck and head build them
from a config:

    norm_cfg=dict(type='FRN' | 'MABN' | 'DNB' | 'DNC' | 'RBN' | 'NormDetSyncBN', ...)
    conv_cfg=dict(type='CenConv')

The names come from the norm table (``normdet.norms``); none replaces an mmdet or mmcv name
(normdet's SyncBN, which also runs on CPU processes, is ``NormDetSyncBN`` beside mmcv's
``SyncBN``). Imported by ``import normdet`` (in a config: ``custom_imports=dict(imports=['normdet'])``).
Parameter-name abbreviations come from each class's ``_abbr_`` (frn, mabn, dnb, dnc, bn).
"""
from mmengine.registry import MODELS

# register their classes
from . import checkpoints, heads, norm_act, optim, preprocessor, stack_fixes  # noqa: F401
from .data import coco_dataset  # noqa: F401
from .layers import CenConv2d
from .norms import NORMS



def register_layers() -> None:
    """Register every layer of the norm table not registered yet (idempotent)."""
    for norm in NORMS.values():
        if norm.layer is not None and MODELS.get(norm.type) is not norm.layer:
            MODELS.register_module(name=norm.type, module=norm.layer)


register_layers()
MODELS.register_module(name='CenConv', module=CenConv2d)
