"""normdet: normalization layers for object detection (BN, SyncBN, GN, FRN, MABN, DN-B, DN-C, RBN).

The layers in ``normdet.layers`` are plain PyTorch. When MMEngine/MMDetection are installed,
importing normdet also registers them (see ``normdet.registry``).
"""
from .layers import DNB, DNC, FRN, MABN, RBN, CenConv2d, SyncBatchNorm

__version__ = '0.1.0'
__all__ = ['FRN', 'MABN', 'CenConv2d', 'DNB', 'DNC', 'RBN', 'SyncBatchNorm']

try:
    import mmdet  # noqa: F401
except ImportError:  # layers stay usable without the OpenMMLab stack
    pass
else:
    from . import mmdet_fixes  # noqa: F401  (checkpoint allow-list, SSDHead fix)
    from . import registry  # noqa: F401  (registers the layers)
    from .convert import check_norm_types, convert_norm  # noqa: F401
    from .evaluation import NormDetCocoMetric  # noqa: F401  (registers the metric)
    from .runner import NormDetRunner, NormDetStateHook, prepare_config  # noqa: F401
    __all__ += ['convert_norm', 'check_norm_types', 'prepare_config', 'NormDetRunner',
                'NormDetStateHook', 'NormDetCocoMetric']
