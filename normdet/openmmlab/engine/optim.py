"""Optimizer rules for normalization parameters, as MMEngine optimizer-wrapper constructors.

``NormDetOptimWrapperConstructor`` is MMEngine's default constructor, except that its
``norm_decay_mult`` (and ``norm_weight_lr_mult``, when given) applies to every normalization layer:
torch/mmcv's (BN, SyncBN, GN, LN, IN) and every norm of normdet's table (``normdet.norms``;
MMEngine's own rule knows only torch's), so one setting treats every norm alike. ``convert_norm``
makes it the constructor of every config unless the norm's entry names its own.

``RBNOptimWrapperConstructor`` is the Revisiting-BN rule on top of it:

    optim_wrapper = dict(constructor='RBNOptimWrapperConstructor',
                         paramwise_cfg=dict(norm_weight_lr_mult=0.01))

every normalization layer's scale (``weight``; RBN's is named ``scale``) gets
lr * norm_weight_lr_mult (1/c, c = 100 in the paper), and normalization parameters and all biases
get no weight decay unless ``norm_decay_mult`` / ``bias_decay_mult`` say otherwise. The SC module
of DN-B/DN-C is an ordinary sub-network and keeps the base rule. Other ``paramwise_cfg`` keys
(custom_keys, ...) act as in MMEngine's default constructor, and custom keys take precedence.
"""
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.utils.dl_utils import is_norm

from ...norms import norm_of


def is_norm_layer(module) -> bool:
    """torch/mmcv's norms (BN, SyncBN, GN, LN, IN) and every norm of normdet's table."""
    return is_norm(module) or norm_of(module) is not None


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class NormDetOptimWrapperConstructor(DefaultOptimWrapperConstructor):

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.norm_weight_lr_mult = paramwise_cfg.pop('norm_weight_lr_mult', None)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:  # the base class recurses; apply the rule once, at the top-level call
            return
        custom = tuple(self.paramwise_cfg.get('custom_keys', {}))
        names = {id(p): n for n, p in module.named_parameters()}
        norm_params = {id(p): n for mod in module.modules() if is_norm_layer(mod)
                       for n, p in mod.named_parameters(recurse=False)}
        decay_mult = self.paramwise_cfg.get('norm_decay_mult')
        for group in params[start:]:
            p = group['params'][0]
            if id(p) not in norm_params or any(k in names.get(id(p), '') for k in custom):
                continue
            if self.norm_weight_lr_mult is not None and norm_params[id(p)] in ('weight', 'scale'):
                group['lr'] = self.base_lr * self.norm_weight_lr_mult
            # biases are covered by the base class's bias_decay_mult
            if self.base_wd is not None and decay_mult is not None:
                group['weight_decay'] = self.base_wd * decay_mult


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class RBNOptimWrapperConstructor(NormDetOptimWrapperConstructor):

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        paramwise_cfg.setdefault('norm_weight_lr_mult', 0.01)
        # no decay on norm parameters and biases unless the user says otherwise
        paramwise_cfg.setdefault('norm_decay_mult', 0.)
        paramwise_cfg.setdefault('bias_decay_mult', 0.)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
