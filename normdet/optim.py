"""The Revisiting-BN optimizer rule as an MMEngine optimizer-wrapper constructor.

    optim_wrapper = dict(constructor='RBNOptimWrapperConstructor',
                         paramwise_cfg=dict(norm_weight_lr_mult=0.01))

Every normalization layer's scale (``weight``; RBN's is named ``scale``) gets
lr * norm_weight_lr_mult (1/c, c = 100 in the paper); normalization parameters and all biases get
no weight decay by default (``norm_decay_mult`` / ``bias_decay_mult`` change that). Normalization layers are
torch/mmcv's (BN, SyncBN, GN, LN, IN) and normdet's (FRN, MABN, DN-B, DN-C, RBN); the SC module of
DN-B/DN-C is an ordinary sub-network and keeps the base rule. Other ``paramwise_cfg`` keys
(custom_keys, ...) act as in MMEngine's default constructor, and custom keys take precedence.
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.utils.dl_utils import is_norm

from .layers import DNB, DNC, FRN, MABN, RBN

NORMDET_NORMS = (FRN, MABN, DNB, DNC, RBN)


def is_norm_layer(module) -> bool:
    return is_norm(module) or isinstance(module, NORMDET_NORMS)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RBNOptimWrapperConstructor(DefaultOptimWrapperConstructor):

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.norm_weight_lr_mult = paramwise_cfg.pop('norm_weight_lr_mult', 0.01)
        # no decay on norm parameters and biases unless the user says otherwise
        paramwise_cfg.setdefault('norm_decay_mult', 0.)
        paramwise_cfg.setdefault('bias_decay_mult', 0.)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # the base class recurses; apply the rule once, at the top-level call
            return
        custom = tuple(self.paramwise_cfg.get('custom_keys', {}))
        names = {id(p): n for n, p in module.named_parameters()}
        norm_params = {}
        for mod in module.modules():
            if is_norm_layer(mod):
                for n, p in mod.named_parameters(recurse=False):
                    norm_params[id(p)] = n
        for group in params[start:]:
            p = group['params'][0]
            if any(k in names.get(id(p), '') for k in custom):
                continue
            if norm_params.get(id(p)) in ('weight', 'scale'):
                group['lr'] = self.base_lr * self.norm_weight_lr_mult
            # mmengine's is_norm does not know normdet's layers: give them the norm decay rule too
            # (biases are covered by the base class's bias_decay_mult)
            if self.base_wd is not None and id(p) in norm_params:
                group['weight_decay'] = self.base_wd * self.paramwise_cfg['norm_decay_mult']
