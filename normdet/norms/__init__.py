"""The norms themselves, in plain PyTorch: the table that defines each norm (``table``), the
conversion of a built model's batch norms (``convert``) and the folding of eval-mode norms into
the convolutions before them (``fuse``), and a BN-pretrained checkpoint loaded into any norm
(``pretrained``).

    from normdet.norms import NORMS, get_norm, convert_module, fold_norms, load_bn_state_dict
"""
from .convert import convert_module
from .fuse import fold_norms
from .pretrained import LoadReport, load_bn_state_dict, remap_bn_state_dict
from .table import (BN_EPS, BN_MOMENTUM, NORMS, Norm, NormContext, batch_free_norms, bn_affine,
                    get_norm, norm_of, register_norm)

__all__ = ['BN_EPS', 'BN_MOMENTUM', 'NORMS', 'LoadReport', 'Norm', 'NormContext',
           'batch_free_norms', 'bn_affine', 'convert_module', 'fold_norms', 'get_norm',
           'load_bn_state_dict', 'norm_of', 'register_norm', 'remap_bn_state_dict']
