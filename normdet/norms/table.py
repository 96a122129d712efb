"""Every normalization normdet knows, each defined by one entry of one table.

    from normdet.norms import NORMS, get_norm
    frn = get_norm('FRN')
    frn.norm_cfg(dict(type='BN', eps=1e-3, momentum=0.03), NormContext(batch_per_gpu=2))
    frn.build(64)          # the plain PyTorch layer, as a config would build it

An entry says everything the rest of normdet needs to know about a norm, so that the config
rewrite (``normdet.openmmlab.models.convert``), the optimizer rule
(``normdet.openmmlab.engine.optim``), inference folding (``normdet.norms.fuse``), the
registration (``normdet.openmmlab.models``), the benchmark tools and the tests
all read it instead of keeping their own lists:

- ``layer``/``type``: the class and the registry type its ``norm_cfg`` uses (mmcv's own BN and GN
  have no normdet class);
- how its ``norm_cfg`` is built from the BN config it replaces: ``bn_args`` norms (the batch-
  statistics family, whose eps and momentum mean what BN's mean) take that BN's eps and momentum,
  so every BN-family norm of a detector runs with one convention; the others keep their paper's
  values (``defaults``); ``options`` adds arguments that depend on the run (GN's groups, MABN's
  buffer from the batch per GPU);
- its companions: ``fused_act`` (the layer carries the activation, FRN+TLU: the activation after
  it goes, see ``normdet.openmmlab.models.norm_act``), ``conv`` (the conv type before it: MABN's weight-centralised
  CenConv), ``optim_constructor`` and ``data_preprocessor`` (RBN's learning-rate rule and input BN);
- ``sync``: 'always' (SyncBN), 'option' (``sync_stats=True`` reduces its statistics over all
  processes) or 'never' (per-sample or per-GPU statistics);
- ``batch_stats``: whether training needs more than one value per channel in the batch;
- ``eval_affine``: for folding into the preceding conv at inference, a function returning the
  per-channel (s, t) with eval output s * x + t, or None where no such identity exists;
- ``kernels``: whether its layer runs on the fused Triton kernels on CUDA
  (``normdet.layers._affine.backend``).

Adding a norm: its layer file in ``normdet/layers/``, one ``register_norm(Norm(...))`` below, and
its configs (``configs/<detector>_<name>.py``, two lines each).
"""
import dataclasses
import inspect
import math
from typing import Callable, Optional

import torch
from torch import nn

from ..layers import DNB, DNC, FRN, MABN, RBN, SyncBatchNorm
from ..utils.errors import ConfigError, is_count

# mmcv's BN defaults, used when a BN config does not set them
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


@dataclasses.dataclass(frozen=True)
class NormContext:
    """What a norm's config may depend on besides the BN config it replaces."""
    batch_per_gpu: int = 2
    target_batch: int = 32      # MABN: the batch its moving averages emulate
    num_groups: int = 32        # GN
    sync_stats: bool = False    # 'option' norms reduce their statistics over all processes

    def __post_init__(self):
        for key in ('batch_per_gpu', 'target_batch', 'num_groups'):
            value = getattr(self, key)
            if not is_count(value):
                raise ConfigError(f'NormContext {key} must be a positive integer, got {value!r}')


@dataclasses.dataclass(frozen=True)
class Norm:
    name: str
    type: str
    layer: Optional[type] = None
    bn_args: bool = False
    defaults: dict = dataclasses.field(default_factory=dict)
    options: Optional[Callable[[NormContext], dict]] = None
    fused_act: bool = False
    conv: Optional[str] = None
    optim_constructor: Optional[str] = None
    data_preprocessor: Optional[str] = None
    sync: str = 'never'
    batch_stats: bool = True
    eval_affine: Optional[Callable] = None
    kernels: bool = False
    paper: str = ''

    def norm_cfg(self, bn_cfg: dict, ctx: NormContext = NormContext()) -> dict:
        """The ``norm_cfg`` that replaces ``bn_cfg`` (an mmcv BN config)."""
        cfg = dict(type=self.type, requires_grad=bn_cfg.get('requires_grad', True))
        if self.bn_args:
            cfg.update(eps=bn_cfg.get('eps', BN_EPS), momentum=bn_cfg.get('momentum', BN_MOMENTUM))
        cfg.update(self.defaults)
        if self.options is not None:
            cfg.update(self.options(ctx))
        if ctx.sync_stats and self.sync == 'option':
            cfg['sync_stats'] = True
        return cfg

    @property
    def layer_class(self) -> type:
        return self.layer or dict(BN=nn.BatchNorm2d, GN=nn.GroupNorm)[self.type]

    def build(self, num_features: int, ctx: NormContext = NormContext(), **kwargs) -> nn.Module:
        """The layer as ``norm_cfg(BN defaults)`` builds it, without mmcv; ``kwargs`` override
        the layer's arguments. GN takes the largest group count that divides both
        ``num_groups`` and ``num_features`` (gcd: 8 groups for 24 channels at 32), so that one
        setting serves every width of a model."""
        params = inspect.signature(self.layer_class.__init__).parameters
        accepted = [p for p in params if p not in ('self', 'num_features', 'num_channels')]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in accepted and not takes_any]
        if unknown:
            raise ConfigError(f'the {self.name} norm takes no argument {unknown[0]!r}; it takes '
                              f'{", ".join(accepted)}')
        cfg = self.norm_cfg({}, ctx)
        cfg.pop('type'), cfg.pop('requires_grad')
        cfg.update(kwargs)
        if self.layer_class is nn.GroupNorm:
            if not is_count(cfg['num_groups']):
                raise ConfigError(f'GN num_groups must be a positive integer, got '
                                  f'{cfg["num_groups"]!r}')
            groups = math.gcd(cfg.pop('num_groups'), num_features)
            return nn.GroupNorm(groups, num_features, **cfg)
        return self.layer_class(num_features, **cfg)


NORMS = {}


def register_norm(norm: Norm) -> Norm:
    if norm.name in NORMS:
        raise ValueError(f'norm {norm.name!r} is already registered')
    if norm.sync not in ('always', 'option', 'never'):
        raise ValueError(f"sync must be 'always', 'option' or 'never', got {norm.sync!r}")
    NORMS[norm.name] = norm
    return norm


def get_norm(name: str) -> Norm:
    if not isinstance(name, str):
        raise ConfigError(f'norm must be one name, one of {", ".join(NORMS)}; got {name!r}')
    if name not in NORMS:
        raise ConfigError(f'unknown norm {name!r}; choose one of {", ".join(NORMS)}')
    return NORMS[name]


def norm_of(module: nn.Module) -> Optional[Norm]:
    """The entry whose layer ``module`` is (None for modules that are no known norm)."""
    for norm in NORMS.values():
        if type(module) is norm.layer_class or (norm.layer and isinstance(module, norm.layer)):
            return norm
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return NORMS['BN']  # torch's SyncBatchNorm and other BN subclasses fold like BN
    return None


def batch_free_norms() -> list:
    """Names of the norms that train with a batch of one image."""
    return [n.name for n in NORMS.values() if not n.batch_stats]


# --- eval-time affine maps (folding) -------------------------------------------------------------

def bn_affine(norm) -> tuple:
    """BN in eval: s = gamma / sqrt(running_var + eps), t = beta - running_mean * s."""
    s = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        s = s * norm.weight
    t = -norm.running_mean * s
    return s, (t + norm.bias if norm.bias is not None else t)


def mabn_affine(norm) -> tuple:
    """MABN in eval: s = gamma / sqrt(running_var + eps), t = beta (no mean subtraction)."""
    return norm.weight * torch.rsqrt(norm.running_var + norm.eps), norm.bias


def rbn_affine(norm) -> tuple:
    """RBN in eval is BN with its scale named ``scale``."""
    s = norm.scale * torch.rsqrt(norm.running_var + norm.eps)
    return s, norm.bias - norm.running_mean * s


def dnc_affine(norm) -> tuple:
    """DN-C in eval: BN's affine with the SC module's output on the running statistics added."""
    return norm.eval_affine()


def _mabn_buffer(ctx: NormContext) -> dict:
    # the paper: buffer = target batch / batch per GPU (32 / 2 = 16). Rounded up and at least 2,
    # so the moving average always spans iterations (32 // 24 would silently give 1).
    return dict(buffer_size=max(2, math.ceil(ctx.target_batch / ctx.batch_per_gpu)))


register_norm(Norm(
    'BN', 'BN', bn_args=True, eval_affine=bn_affine,
    paper='Ioffe & Szegedy 2015'))
register_norm(Norm(
    'SyncBN', 'NormDetSyncBN', layer=SyncBatchNorm, bn_args=True, sync='always',
    eval_affine=bn_affine, paper='Peng et al. 2018 (MegDet)'))
register_norm(Norm(
    'GN', 'GN', options=lambda ctx: dict(num_groups=ctx.num_groups), batch_stats=False,
    paper='Wu & He 2018'))
register_norm(Norm(
    'FRN', 'FRN', layer=FRN, defaults=dict(eps=1e-6, learnable_eps='auto'), fused_act=True,
    batch_stats=False, kernels=True, paper='Singh & Krishnan 2020'))
register_norm(Norm(
    'MABN', 'MABN', layer=MABN, options=_mabn_buffer, conv='CenConv', sync='option',
    eval_affine=mabn_affine, kernels=True, paper='Yan et al. 2020'))
register_norm(Norm(
    'DNB', 'DNB', layer=DNB, bn_args=True, sync='option', kernels=True, paper='Liu et al. 2021'))
register_norm(Norm(
    'DNC', 'DNC', layer=DNC, bn_args=True, sync='option', eval_affine=dnc_affine, kernels=True,
    paper='Liu et al. 2021'))
register_norm(Norm(
    'RBN', 'RBN', layer=RBN, bn_args=True, sync='option',
    optim_constructor='RBNOptimWrapperConstructor', data_preprocessor='RBNDetDataPreprocessor',
    eval_affine=rbn_affine, paper='Davis & Frank 2021'))
