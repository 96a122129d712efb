"""Registers normdet's layers in MMEngine's root registries, so that mmcv's build_norm_layer /
build_conv_layer and every mmdet backbone, neck and head build them from a config:

    norm_cfg=dict(type='FRN' | 'MABN' | 'DNB' | 'DNC' | 'RBN', ...)
    conv_cfg=dict(type='CenConv')
    norm_cfg=dict(type='SyncBN')   # torch's SyncBatchNorm, which here also runs on CPU/gloo

Imported by ``import normdet`` (in a config: ``custom_imports=dict(imports=['normdet'])``).
Parameter-name abbreviations come from each class's ``_abbr_`` (frn, mabn, dnb, dnc, bn).
"""
from mmengine.registry import MODELS

from . import optim, preprocessor  # noqa: F401  (register the constructor and preprocessor)
from .layers import DNB, DNC, FRN, MABN, RBN, CenConv2d, SyncBatchNorm

NORM_LAYERS = dict(FRN=FRN, MABN=MABN, DNB=DNB, DNC=DNC, RBN=RBN)


for _name, _cls in NORM_LAYERS.items():
    MODELS.register_module(name=_name, module=_cls, force=True)
MODELS.register_module(name='CenConv', module=CenConv2d, force=True)
# torch's SyncBatchNorm, plus a CPU (gloo) path: the SyncBN configs train on CPU processes too
MODELS.register_module(name='SyncBN', module=SyncBatchNorm, force=True)
