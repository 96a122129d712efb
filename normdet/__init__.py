"""normdet: normalization layers for object detection (BN, SyncBN, GN, FRN, MABN, DN-B, DN-C, RBN).

The layers in ``normdet.layers`` are plain PyTorch, and ``normdet.norms`` describes each norm.
When MMEngine/MMDetection are installed, importing normdet also registers them under names of
their own (see ``normdet.registry``); it changes nothing of MMEngine's or MMDetection's.
"""
from .convert import convert_module  # plain PyTorch: a built model's BNs to any normdet norm
from .layers import DNB, DNC, FRN, MABN, RBN, CenConv2d, SyncBatchNorm

__version__ = '0.1.0'
__all__ = ['FRN', 'MABN', 'CenConv2d', 'DNB', 'DNC', 'RBN', 'SyncBatchNorm', 'convert_module']

try:
    import mmdet  # noqa: F401
except ImportError:  # layers stay usable without the OpenMMLab stack
    pass
else:
    # registers normdet's layers, detector variants, optimizer rules, preprocessor and metric
    # under names of their own; the stack fixes (normdet.stack_fixes) are applied by the runner
    # and the tools, not by this import
    from . import registry  # noqa: F401
    from .convert import check_norm_types, convert_norm  # noqa: F401
    from .evaluation import NormDetCocoMetric  # noqa: F401  (registers the metric)
    from .runner import NormDetRunner, NormDetStateHook, prepare_config  # noqa: F401
    __all__ += ['convert_norm', 'check_norm_types', 'prepare_config', 'NormDetRunner',
                'NormDetStateHook', 'NormDetCocoMetric']
