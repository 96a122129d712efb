"""Rewrite a whole MMDetection config to use one normalization everywhere it uses BN.

    from mmengine.config import Config
    from normdet import convert_norm
    cfg = convert_norm(Config.fromfile('configs/my_ssdlite.py'), 'DNB')

(any MMDetection config: a file whose ``_base_`` is ``mmdet::ssd/ssdlite_...py`` or mmdet's
packaged config itself, under ``mmengine.utils.get_installed_path('mmdet')/.mim/configs``)

Every dict in ``cfg.model`` whose ``norm_cfg`` is a BN (backbone, neck, heads: wherever the
config normalizes) gets the new norm, built from that BN config by the norm's entry in
``normdet.norms`` (eps/momentum, paper defaults, run-dependent options), plus the entry's
companions:
- ``fused_act`` (FRN+TLU): the detector is built as ``NormAct<Detector>``, which removes the
  activation after each norm that carries one and TLU where no activation follows
  (``normdet.openmmlab.models.norm_act``);
- ``conv`` (MABN): ``conv_cfg`` of the same component, the weight-centralised CenConv;
- ``optim_constructor`` / ``data_preprocessor`` (RBN): the optimizer rule and, with
  ``input_bn=True``, the online input normalisation (``RBNDetDataPreprocessor``, mean/std removed).
  Every other norm gets ``NormDetOptimWrapperConstructor``: MMEngine's default rule, with
  ``norm_decay_mult`` applying to normdet's norms as to BN and GN.
- batch statistics (``batch_stats``) in a head whose convolutions are shared across pyramid
  levels (RetinaNet's towers): one norm per level, the convolutions shared, as detectron2's
  RetinaNetHead does (``normdet.openmmlab.models.heads``; ``per_level=False`` shares the norm instead).
``placement='backbone'`` removes the norm from every component outside the backbone instead
(their convolutions then get biases), for every norm, BN included: the backbone-only placement.
``placement='depthwise'`` (``'pointwise'``) puts the norm after a MobileNetV2 backbone's
depthwise (1x1) convolutions only, its other convolutions keeping the config's BN, and the norm
everywhere outside the backbone (``NormDetMobileNetV2``, ``normdet.openmmlab.models.placed``):
the ablation of where a norm fails inside MobileNetV2. Norms with a companion conv or a fused
activation (MABN, FRN) do not mix with BN this way and are refused.
``scratch=True`` (training from scratch, as all normdet configs do): ``norm_eval=False``,
``frozen_stages=-1``, ``zero_init_residual=False`` and no ``Pretrained`` init_cfg, for every norm.
``scratch=False`` keeps a component's ``init_cfg=dict(type='Pretrained', checkpoint=...,
[prefix=...], [strict=False])`` and makes it load a BN-pretrained checkpoint into every norm
(``NormDetPretrained`` before it: ``normdet.openmmlab.models.pretrained``, docs/pretrained.md).

A model built without configs is converted after it is built, in plain PyTorch, by
``normdet.convert_module`` (``normdet/norms/convert.py``).
"""
import functools
import inspect
import sys

from mmdet.registry import MODELS

from ...norms import NORMS, NormContext, get_norm
from ...utils.config import walk
from ...utils.errors import ConfigError
from .placed import KINDS
from .preprocessor import SOURCE_CONFIG

BN_TYPES = ('BN', 'BN2d', 'SyncBN', 'NaiveSyncBN', 'NormDetSyncBN')
# heads that run one set of convolutions on every pyramid level -> their per-level-norm variant
SHARED_HEADS = {'RetinaHead': 'NormDetRetinaHead'}
PLACEMENTS = ('all', 'backbone', 'depthwise', 'pointwise')
PRETRAINED_ARGS = ('checkpoint', 'prefix', 'map_location')  # MMEngine's PretrainedInit


@functools.cache
def _init_args(type_name: str) -> frozenset:
    """The constructor arguments of the mmdet class registered as ``type_name``."""
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cls = MODELS.get(type_name)
    return frozenset(inspect.signature(cls.__init__).parameters) if cls else frozenset()


def _accepts(component: dict, arg: str) -> bool:
    """Whether the component's config has ``arg`` or its registered class takes it."""
    t = component.get('type')
    return arg in component or (isinstance(t, str) and arg in _init_args(t))


def check_norm_types(model_cfg) -> None:
    """Raise a ConfigError (a ValueError) naming every ``norm_cfg`` whose type no registry knows, with the fix.

    mmcv's build_norm_layer reports a typo as "Cannot find None in registry"; the tools call this
    on the config before building the model."""
    for component, path in walk(model_cfg):
        norm = component.get('norm_cfg')
        if isinstance(norm, dict) and isinstance(norm.get('type'), str):
            if MODELS.get(norm['type']) is None:
                known = sorted({'BN', 'SyncBN', 'GN', 'LN', 'IN', *(n.type for n in NORMS.values())})
                raise ConfigError(f"{path}.norm_cfg: unknown norm type {norm['type']!r}; use one "
                                  f"of {', '.join(known)} (normdet's are registered by "
                                  "custom_imports=dict(imports=['normdet.openmmlab']))")


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
    elif isinstance(init, list) and any(_is_pretrained(i) for i in init):
        component['init_cfg'] = [i for i in init if not _is_pretrained(i)] or None


def _is_pretrained(init) -> bool:
    return isinstance(init, dict) and init.get('type') in ('Pretrained', 'NormDetPretrained')


def _pretrained(component: dict, path: str) -> None:
    """A ``Pretrained`` init_cfg of the component loads BN's tensors into its norms: the same
    init, with ``NormDetPretrained`` (taking its ``strict``) before it
    (``normdet.openmmlab.models.pretrained``)."""
    init = component.get('init_cfg')
    inits = init if isinstance(init, list) else [init]
    if not any(isinstance(i, dict) and i.get('type') == 'Pretrained' for i in inits) \
            or any(isinstance(i, dict) and i.get('type') == 'NormDetPretrained' for i in inits):
        return  # no pretrained start, or prepared already
    new = []
    for i in inits:
        if not (isinstance(i, dict) and i.get('type') == 'Pretrained'):
            new.append(i)
            continue
        # --cfg-options init_cfg.type=Pretrained over another init (SSDLite's TruncNormal)
        # leaves that init's arguments, which MMEngine's Pretrained does not take
        left = sorted(set(i) - {'type', 'strict', *PRETRAINED_ARGS})
        if left:
            print(f"[normdet] warning: {path}.init_cfg: a Pretrained init takes "
                  f"{', '.join(PRETRAINED_ARGS)} and strict; {', '.join(left)} (left from the "
                  'init it replaces) dropped', file=sys.stderr, flush=True)
        new += [dict(type='NormDetPretrained', strict=i.get('strict', True)),
                dict(type='Pretrained', **{k: i[k] for k in PRETRAINED_ARGS if k in i})]
    component['init_cfg'] = new


def _place_in_mobilenet(backbone: dict, placement: str, bn: dict, norm: str, spec) -> None:
    if backbone.get('type') not in ('MobileNetV2', 'NormDetMobileNetV2'):
        raise ConfigError(f"norm_options.placement={placement!r} places the norm inside a "
                          f"MobileNetV2 backbone (SSDLite's); this model's backbone is "
                          f"{backbone.get('type')!r}: use placement='all' or 'backbone'")
    if spec.conv or spec.fused_act:
        raise ConfigError(f"norm_options.placement={placement!r}: {norm} comes with "
                          f"{'a weight-centralised conv' if spec.conv else 'its own activation'}"
                          ", which does not mix with BN inside a block; the placements "
                          "'depthwise' and 'pointwise' take BN, SyncBN, GN, DNB, DNC or RBN")
    backbone.update(type='NormDetMobileNetV2', placement=placement, other_norm_cfg=dict(bn))


def convert_norm(cfg, norm: str, *, batch_per_gpu: int = None, target_batch: int = 32,
                 num_groups: int = 32, scratch: bool = True, input_bn: bool = True,
                 sync_stats: bool = False, placement: str = 'all', per_level: bool = True,
                 layer_args: dict = None, conv_args: dict = None):
    """Rewrite ``cfg`` (an mmengine Config or a dict with a ``model`` key) in place; returns it.

    ``batch_per_gpu`` defaults to the train dataloader's batch size (MABN's buffer follows it);
    ``sync_stats=True`` makes the norms whose entry has ``sync='option'`` (MABN, DN-B, DN-C, RBN)
    reduce their batch statistics over all processes (use SyncBN for synced BN); ``layer_args``
    are extra arguments of every norm layer built (e.g. ``dict(sc_input='normalized')`` for
    DN-B/DN-C, ``dict(warmup_iters=50)`` for MABN); ``conv_args`` those of the convolution that
    comes with the norm (MABN's CenConv: ``dict(centre_depthwise=False)``)."""
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
        else:
            _pretrained(component, path)
        old = component.get('norm_cfg')
        if not (isinstance(old, dict) and old.get('type') in BN_TYPES):
            return
        if placement == 'backbone' and not path.startswith('model.backbone'):
            component['norm_cfg'] = None
            return
        component['norm_cfg'] = dict(spec.norm_cfg(old, ctx), **(layer_args or {}))
        if placement in KINDS and path == 'model.backbone':
            _place_in_mobilenet(component, placement, old, norm, spec)
        if spec.conv and _accepts(component, 'conv_cfg'):
            component['conv_cfg'] = dict(type=spec.conv, **(conv_args or {}))
        if per_level and spec.batch_stats and component.get('type') in SHARED_HEADS:
            component['type'] = SHARED_HEADS[component['type']]

    model = cfg['model']
    for component, path in walk(model):
        rewrite(component, path)
    if spec.fused_act and not model['type'].startswith('NormAct'):
        model['type'] = 'NormAct' + model['type']
    if spec.optim_constructor and 'optim_wrapper' in cfg:
        cfg['optim_wrapper']['constructor'] = spec.optim_constructor
    elif 'optim_wrapper' in cfg:  # a constructor the user chose stays
        cfg['optim_wrapper'].setdefault('constructor', 'NormDetOptimWrapperConstructor')
    pre = model.get('data_preprocessor')
    if isinstance(pre, dict) and pre.get('type') == SOURCE_CONFIG:  # a normdet source config's
        pre['type'] = 'DetDataPreprocessor'
    if (spec.data_preprocessor and input_bn and isinstance(pre, dict)
            and pre.get('type') == 'DetDataPreprocessor'):
        pre.update(type=spec.data_preprocessor, mean=None, std=None, input_bn=True)
    return cfg
