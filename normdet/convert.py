"""Rewrite a whole MMDetection config to use one normalization everywhere it uses BN.

    from mmengine.config import Config
    from normdet import convert_norm
    cfg = convert_norm(Config.fromfile('mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'),
                       'DNB')

Every dict in ``cfg.model`` whose ``norm_cfg`` is a BN (backbone, neck, heads: wherever the
config normalizes) gets the new norm, built from that BN config by the norm's entry in
``normdet.norms`` (eps/momentum, paper defaults, run-dependent options), plus the entry's
companions:
- ``fused_act`` (FRN+TLU): the detector is built as ``NormAct<Detector>``, which removes the
  activation after each norm that carries one and TLU where no activation follows
  (``normdet.norm_act``);
- ``conv`` (MABN): ``conv_cfg`` of the same component, the weight-centralised CenConv;
- ``optim_constructor`` / ``data_preprocessor`` (RBN): the optimizer rule and, with
  ``input_bn=True``, the online input normalisation (``RBNDetDataPreprocessor``, mean/std removed).
  Every other norm gets ``NormDetOptimWrapperConstructor``: MMEngine's default rule, with
  ``norm_decay_mult`` applying to normdet's norms as to BN and GN.
- batch statistics (``batch_stats``) in a head whose convolutions are shared across pyramid
  levels (RetinaNet's towers): one norm per level, the convolutions shared, as detectron2's
  RetinaNetHead does (``normdet.heads``; ``per_level=False`` shares the norm instead).
``placement='backbone'`` removes the norm from every component outside the backbone instead
(their convolutions then get biases), for every norm, BN included: the backbone-only placement.
``scratch=True`` (training from scratch, as all normdet configs do): ``norm_eval=False``,
``frozen_stages=-1``, ``zero_init_residual=False`` and no ``Pretrained`` init_cfg, for every norm.

A model built without configs (torchvision, timm, your own) is converted after it is built, in
plain PyTorch, as detectron2's ``FrozenBatchNorm2d.convert_frozen_batchnorm`` and timm's
``freeze_batch_norm_2d`` swap theirs:

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None)
    model = normdet.convert_module(model, 'FRN')
"""
import functools
import inspect

import torch
from torch import nn

from .errors import ConfigError
from .norms import BN_MOMENTUM, NORMS, NormContext, get_norm

BN_TYPES = ('BN', 'BN2d', 'SyncBN', 'NaiveSyncBN', 'NormDetSyncBN')
# heads that run one set of convolutions on every pyramid level -> their per-level-norm variant
SHARED_HEADS = {'RetinaHead': 'NormDetRetinaHead'}
PLACEMENTS = ('all', 'backbone')


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
                known = sorted({'BN', 'SyncBN', 'GN', 'LN', 'IN', *(n.type for n in NORMS.values())})
                raise ConfigError(f"{path}.norm_cfg: unknown norm type {norm['type']!r}; use one "
                                  f"of {', '.join(known)} (normdet's are registered by "
                                  "custom_imports=dict(imports=['normdet']))")

    _walk(model_cfg, check)


def _scratch(component: dict) -> None:
    if _accepts(component, 'norm_eval'):
        component['norm_eval'] = False
    if 'frozen_stages' in component:
        component['frozen_stages'] = -1
    if _accepts(component, 'zero_init_residual'):
        component['zero_init_residual'] = False
    init = component.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        component['init_cfg'] = None


def convert_norm(cfg, norm: str, *, batch_per_gpu: int = None, target_batch: int = 32,
                 num_groups: int = 32, scratch: bool = True, input_bn: bool = True,
                 sync_stats: bool = False, placement: str = 'all', per_level: bool = True,
                 layer_args: dict = None):
    """Rewrite ``cfg`` (an mmengine Config or a dict with a ``model`` key) in place; returns it.

    ``batch_per_gpu`` defaults to the train dataloader's batch size (MABN's buffer follows it);
    ``sync_stats=True`` makes the norms whose entry has ``sync='option'`` (MABN, DN-B, DN-C, RBN)
    reduce their batch statistics over all processes (use SyncBN for synced BN); ``layer_args``
    are extra arguments of every norm layer built (e.g. ``dict(sc_input='normalized')`` for
    DN-B/DN-C, ``dict(warmup_iters=50)`` for MABN)."""
    spec = get_norm(norm)
    if placement not in PLACEMENTS:
        raise ConfigError(f'unknown norm placement {placement!r}; choose one of '
                          f'{", ".join(PLACEMENTS)}')
    if batch_per_gpu is None:
        batch_per_gpu = (cfg.get('train_dataloader') or {}).get('batch_size', 2)
    ctx = NormContext(batch_per_gpu=batch_per_gpu, target_batch=target_batch,
                      num_groups=num_groups, sync_stats=sync_stats)

    def rewrite(component: dict, path: str):
        if scratch:
            _scratch(component)
        old = component.get('norm_cfg')
        if not (isinstance(old, dict) and old.get('type') in BN_TYPES):
            return
        if placement == 'backbone' and not path.startswith('model.backbone'):
            component['norm_cfg'] = None
            return
        component['norm_cfg'] = dict(spec.norm_cfg(old, ctx), **(layer_args or {}))
        if spec.conv and _accepts(component, 'conv_cfg'):
            component['conv_cfg'] = dict(type=spec.conv)
        if per_level and spec.batch_stats and component.get('type') in SHARED_HEADS:
            component['type'] = SHARED_HEADS[component['type']]

    model = cfg['model']
    _walk(model, rewrite)
    if spec.fused_act and not model['type'].startswith('NormAct'):
        model['type'] = 'NormAct' + model['type']
    if spec.optim_constructor and 'optim_wrapper' in cfg:
        cfg['optim_wrapper']['constructor'] = spec.optim_constructor
    elif 'optim_wrapper' in cfg:  # a constructor the user chose stays
        cfg['optim_wrapper'].setdefault('constructor', 'NormDetOptimWrapperConstructor')
    pre = model.get('data_preprocessor')
    if (spec.data_preprocessor and input_bn and isinstance(pre, dict)
            and pre.get('type') == 'DetDataPreprocessor'):
        pre.update(type=spec.data_preprocessor, mean=None, std=None, input_bn=True)
    return cfg


# --- converting a built model (plain PyTorch) ---------------------------------------------------

def _is_bn2d(module: nn.Module) -> bool:
    """A 2d batch norm of torch (BatchNorm2d, SyncBatchNorm, normdet's SyncBatchNorm) or a frozen
    one (torchvision's and detectron2's FrozenBatchNorm2d: weight, bias, running mean and var as
    buffers)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return not isinstance(module, (nn.BatchNorm1d, nn.BatchNorm3d))
    return type(module).__name__ == 'FrozenBatchNorm2d'


def _convert_bn(bn: nn.Module, spec, ctx: NormContext, kwargs: dict) -> nn.Module:
    args = dict(kwargs)
    if spec.bn_args:  # the BN-family norms keep this BN's eps and momentum, as convert_norm does
        momentum = getattr(bn, 'momentum', None)  # None: torch's cumulative average; frozen BN
        args.setdefault('eps', bn.eps)
        args.setdefault('momentum', BN_MOMENTUM if momentum is None else momentum)
    ref = next(t for t in (bn.running_var, bn.weight) if t is not None)
    new = spec.build(ref.numel(), ctx, **args).to(device=ref.device, dtype=ref.dtype)
    # affine: weight (RBN names it scale) and bias; statistics where the target keeps them
    weight = 'weight' if isinstance(getattr(new, 'weight', None), torch.Tensor) else 'scale'
    state = {}
    for src, dst in (('weight', weight), ('bias', 'bias'), ('running_mean', 'running_mean'),
                     ('running_var', 'running_var'),
                     ('num_batches_tracked', 'num_batches_tracked')):
        value, target = getattr(bn, src, None), getattr(new, dst, None)
        if isinstance(value, torch.Tensor) and isinstance(target, torch.Tensor) \
                and value.shape == target.shape:
            state[dst] = value.detach()
    if not hasattr(new, 'running_mean') and 'running_var' in state and bn.running_mean is not None:
        # MABN normalises by the second moment, E[x^2] = var + mean^2
        state['running_var'] = bn.running_var + bn.running_mean.square()
    with torch.no_grad():
        for name, value in state.items():
            getattr(new, name).copy_(value)
    new.train(bn.training)
    return new


def convert_module(module: nn.Module, norm: str, ctx: NormContext = NormContext(),
                   **kwargs) -> nn.Module:
    """Replace every 2d batch norm of a built model (``nn.BatchNorm2d``, ``nn.SyncBatchNorm``,
    torchvision's ``FrozenBatchNorm2d``) by ``norm`` (any name of ``normdet.norms``), in place;
    returns the model (or the new layer when ``module`` itself is a BN).

    Each new layer is built as the norm's configs build it (``get_norm(norm).build``; the BN-family
    norms take the replaced BN's eps and momentum; ``ctx`` and ``kwargs`` as in ``Norm.build``,
    e.g. ``ctx=NormContext(batch_per_gpu=2)`` for MABN's buffer, ``num_groups=16`` for GN) and
    keeps what carries over: the affine weight (RBN's ``scale``) and bias, and the running mean
    and variance and batch count where the new norm keeps them (BN, SyncBN, DN-B, DN-C, RBN; MABN,
    which normalises by the second moment, gets running var + mean^2). So BN-family targets
    compute in eval exactly what the BN did, and a frozen BN becomes a trainable norm. Only the norms are swapped: activations stay (FRN's TLU
    then precedes the model's ReLU), and the companions the configs add (MABN's weight-centralised
    conv, RBN's optimizer rule and input BN) are the caller's to add."""
    spec = get_norm(norm)
    if _is_bn2d(module):
        return _convert_bn(module, spec, ctx, kwargs)
    for name, child in module.named_children():
        new = convert_module(child, norm, ctx, **kwargs)
        if new is not child:
            setattr(module, name, new)
    return module
