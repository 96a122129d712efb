"""Registers normdet's layers in MMEngine's root registries, so that mmcv's build_norm_layer /
build_conv_layer and every mmdet backbone, neck and head build them from a config:

    norm_cfg=dict(type='FRN' | 'MABN' | 'DNB' | 'DNC' | 'RBN', ...)
    conv_cfg=dict(type='CenConv')

Imported by ``import normdet`` (in a config: ``custom_imports=dict(imports=['normdet'])``).
Parameter-name abbreviations come from each class's ``_abbr_`` (frn, mabn, dnb, dnc, bn).
"""
from mmengine.registry import MODELS

from . import optim, preprocessor  # noqa: F401  (register the constructor and preprocessor)
from .layers import DNB, DNC, FRN, MABN, RBN, CenConv2d

NORM_LAYERS = dict(FRN=FRN, MABN=MABN, DNB=DNB, DNC=DNC, RBN=RBN)



def check_norm_types(cfg, path: str = 'model') -> None:
    """Raise a ValueError naming every ``norm_cfg`` whose type no registry knows, with the fix.

    mmcv's build_norm_layer reports a typo as "Cannot find None in registry"; the tools call this
    on the config before building the model."""
    from mmdet.registry import MODELS as MMDET_MODELS
    if isinstance(cfg, dict):
        norm = cfg.get('norm_cfg')
        if isinstance(norm, dict) and isinstance(norm.get('type'), str):
            if MMDET_MODELS.get(norm['type']) is None:
                known = sorted({'BN', 'SyncBN', 'GN', 'LN', 'IN', *NORM_LAYERS})
                raise ValueError(f"{path}.norm_cfg: unknown norm type {norm['type']!r}; use one "
                                 f"of {', '.join(known)} (normdet's are registered by "
                                 "custom_imports=dict(imports=['normdet']))")
        for k, v in cfg.items():
            check_norm_types(v, f'{path}.{k}')
    elif isinstance(cfg, (list, tuple)):
        for i, v in enumerate(cfg):
            check_norm_types(v, f'{path}[{i}]')


for _name, _cls in NORM_LAYERS.items():
    MODELS.register_module(name=_name, module=_cls, force=True)
MODELS.register_module(name='CenConv', module=CenConv2d, force=True)
