"""The norms themselves, in plain PyTorch: the table that defines each norm (``table``), the
conversion of a built model's batch norms (``convert``) and the folding of eval-mode norms into
the convolutions before them (``fuse``).

    from normdet.norms import NORMS, get_norm, convert_module, fold_norms
"""
from .convert import convert_module
from .fuse import fold_norms
from .table import (BN_EPS, BN_MOMENTUM, NORMS, Norm, NormContext, batch_free_norms, bn_affine,
                    get_norm, norm_of, register_norm)

__all__ = ['BN_EPS', 'BN_MOMENTUM', 'NORMS', 'Norm', 'NormContext', 'batch_free_norms',
           'bn_affine', 'convert_module', 'fold_norms', 'get_norm', 'norm_of', 'register_norm']
