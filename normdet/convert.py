"""Rewrite a whole MMDetection config to use one normalization everywhere it uses BN.

    from mmengine.config import Config
    from normdet import convert_norm
    cfg = convert_norm(Config.fromfile('mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'),
                       'DNB')

Every dict in ``cfg.model`` whose ``norm_cfg`` is a BN (backbone, neck, heads: wherever the base
model normalizes; places without a norm are left without one) gets the new norm, plus the
method's companions in that same component:
- FRN: FRN+TLU replaces BN+activation, so ``act_cfg=None`` where the component takes an
  ``act_cfg``. Components with hard-wired ReLUs (mmdet's ResNet) keep them: there TLU is followed
  by ReLU, i.e. max(y, tau, 0). Components' internal linear (act-free) convs get TLU too, because
  one ``norm_cfg`` serves the whole component.
- MABN: ``conv_cfg=dict(type='CenConv')`` (weight-centralised convs), ``buffer_size`` =
  target_batch // batch_per_gpu (32 // 2 = 16 as in the paper).
- RBN: the optimizer rule (``RBNOptimWrapperConstructor``) and, with ``input_bn=True``, the
  online input normalisation (``RBNDetDataPreprocessor`` with mean/std removed).
- scratch training (``scratch=True``): ``norm_eval=False``, ``frozen_stages=-1`` and no
  ``Pretrained`` init_cfg, for every norm including BN.
The new norm's own defaults replace BN's eps/momentum (their meaning differs per method); BN and
SyncBN keep the original arguments.
"""
import copy
import functools
import inspect

from .errors import ConfigError

BN_TYPES = ('BN', 'BN2d', 'SyncBN', 'NaiveSyncBN')
NORMS = ('BN', 'SyncBN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN')


@functools.cache
def _init_args(type_name: str) -> frozenset:
    """The constructor arguments of the mmdet class registered as ``type_name``."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cls = MODELS.get(type_name)
    return frozenset(inspect.signature(cls.__init__).parameters) if cls else frozenset()


def _accepts(component: dict, arg: str) -> bool:
    """Whether the component's config has ``arg`` or its registered class takes it."""
    t = component.get('type')
    return arg in component or (isinstance(t, str) and arg in _init_args(t))


def _walk(node, fn, path='model'):
    """Call ``fn(d, path)`` on every dict ``d`` in a nested config, ``path`` naming where it is."""
    if isinstance(node, dict):
        fn(node, path)
        for key, value in node.items():
            _walk(value, fn, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _walk(value, fn, f'{path}[{i}]')


def check_norm_types(model_cfg) -> None:
    """Raise a ConfigError (a ValueError) naming every ``norm_cfg`` whose type no registry knows, with the fix.

    mmcv's build_norm_layer reports a typo as "Cannot find None in registry"; the tools call this
    on the config before building the model."""
    from mmdet.registry import MODELS

    def check(component, path):
        norm = component.get('norm_cfg')
        if isinstance(norm, dict) and isinstance(norm.get('type'), str):
            if MODELS.get(norm['type']) is None:
                known = sorted({'BN', 'SyncBN', 'GN', 'LN', 'IN', *NORMS})
                raise ConfigError(f"{path}.norm_cfg: unknown norm type {norm['type']!r}; use one "
                                 f"of {', '.join(known)} (normdet's are registered by "
                                 "custom_imports=dict(imports=['normdet']))")

    _walk(model_cfg, check)


def _check_norm_name(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f'unknown norm {norm!r}; choose one of {", ".join(NORMS)}')


SYNCABLE = ('MABN', 'DNB', 'DNC', 'RBN')


def new_norm_cfg(norm: str, old: dict, *, num_groups: int = 32, buffer_size: int = 16,
                 sync_stats: bool = False) -> dict:
    _check_norm_name(norm)
    requires_grad = old.get('requires_grad', True)
    if sync_stats and norm in SYNCABLE:
        return dict(new_norm_cfg(norm, old, num_groups=num_groups, buffer_size=buffer_size),
                    sync_stats=True)
    if norm == 'BN':
        return copy.deepcopy(dict(old))
    if norm == 'SyncBN':
        return dict(copy.deepcopy(dict(old)), type='SyncBN')
    if norm == 'GN':
        return dict(type='GN', num_groups=num_groups, requires_grad=requires_grad)
    if norm == 'FRN':  # explicit: mmcv's build_norm_layer would otherwise impose eps=1e-5
        return dict(type='FRN', eps=1e-6, requires_grad=requires_grad)
    if norm == 'MABN':
        return dict(type='MABN', buffer_size=buffer_size, requires_grad=requires_grad)
    return dict(type=norm, requires_grad=requires_grad)


def convert_norm(cfg, norm: str, *, batch_per_gpu: int = None, target_batch: int = 32,
                 num_groups: int = 32, scratch: bool = True, input_bn: bool = True,
                 sync_stats: bool = False):
    """Rewrite ``cfg`` (an mmengine Config or a dict with a ``model`` key) in place; returns it.

    ``sync_stats=True`` makes MABN, DN-B, DN-C and RBN reduce their batch statistics over all
    processes (see each layer); BN/GN/FRN ignore it (use SyncBN for synced BN)."""
    _check_norm_name(norm)
    if batch_per_gpu is None:
        batch_per_gpu = (cfg.get('train_dataloader') or {}).get('batch_size', 2)
    buffer_size = max(1, target_batch // batch_per_gpu)

    def rewrite(component: dict, _path: str):
        old = component.get('norm_cfg')
        if not (isinstance(old, dict) and old.get('type') in BN_TYPES):
            return
        component['norm_cfg'] = new_norm_cfg(norm, old, num_groups=num_groups,
                                             buffer_size=buffer_size, sync_stats=sync_stats)
        if norm == 'FRN' and _accepts(component, 'act_cfg'):
            component['act_cfg'] = None
        if norm == 'MABN' and _accepts(component, 'conv_cfg'):
            component['conv_cfg'] = dict(type='CenConv')
        if scratch:
            if _accepts(component, 'norm_eval'):
                component['norm_eval'] = False
            if 'frozen_stages' in component:
                component['frozen_stages'] = -1
            init = component.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                component['init_cfg'] = None

    _walk(cfg['model'], rewrite)
    if norm == 'RBN':
        if 'optim_wrapper' in cfg:
            cfg['optim_wrapper']['constructor'] = 'RBNOptimWrapperConstructor'
            cfg['optim_wrapper'].setdefault('paramwise_cfg', {}).setdefault(
                'norm_weight_lr_mult', 0.01)
        pre = cfg['model'].get('data_preprocessor')
        if input_bn and isinstance(pre, dict) and pre.get('type') == 'DetDataPreprocessor':
            pre.update(type='RBNDetDataPreprocessor', mean=None, std=None, input_bn=True)
    return cfg
