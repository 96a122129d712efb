"""Plain-PyTorch normalization layers; usable without MMDetection."""
from ._checks import nonfinite_layers, raise_if_nonfinite
from .dn import DNB, DNC
from .frn import FRN
from .mabn import MABN, CenConv2d
from .rbn import RBN
from .sync_bn import SyncBatchNorm

__all__ = ['FRN', 'MABN', 'CenConv2d', 'DNB', 'DNC', 'RBN', 'SyncBatchNorm', 'nonfinite_layers',
           'raise_if_nonfinite']
