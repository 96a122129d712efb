"""A BN-pretrained checkpoint into a model whose BNs are other norms, in plain PyTorch.

    model = normdet.convert_module(torchvision.models.resnet50(weights=None), 'MABN')
    report = normdet.norms.load_bn_state_dict(model, torch.load('resnet50_bn.pth'))
    print(report.table())

A config's ``init_cfg=dict(type='Pretrained', ...)`` goes through the same remap
(``normdet.openmmlab.models.pretrained``). What each norm takes from a BN, and why, is
docs/pretrained.md; in short (``map_bn_tensors``):

- a norm that normalises as BN does (BN, SyncBN, DN-B, DN-C, RBN: it keeps ``running_mean``)
  takes the BN's weight (RBN: as ``scale``), bias, running mean and variance and batch count:
  loaded *exactly*; DN's SC module keeps its init (zero last layer: the layer starts as exact BN);
- MABN takes the affine and ``running_var = running_var + running_mean ** 2`` (it normalises by
  the second moment): *mapped*; its moving-average buffers and counter stay at init, so it warms
  up from the first iteration, and the momentum average recalibrates running_var as it trains;
- GN and FRN take the affine only (FRN: gamma, beta; tau stays 0, where TLU equals the ReLU it
  replaces): *mapped*; BN's statistics have no counterpart there and are *dropped*.

Where the norm sits is found from the names mmcv's ``build_norm_layer`` gives (``bn1`` ->
``mabn1``, ``conv1.bn`` -> ``conv1.frn``: the norm class's abbreviation, ``_abbr_``, replacing
``bn``); a module holding one copy of its norm per pyramid level in ``norms``
(``PerLevelNorm``) takes a shared BN's tensors in every copy (or level L's from a per-level BN).
Every other tensor (convolutions, CenConv's weight included) loads under its own name.

A checkpoint tensor that loads nowhere (no such module, a shape that differs) is a
``CheckpointError`` naming it, unless ``strict=False``. Tensors under a top-level name the model
does not have at all (the ImageNet classifier ``fc.*`` of a torchvision ResNet) are skipped and
listed, as MMEngine's ``Pretrained`` skips them; a checkpoint of which nothing loads is an error.
"""
import dataclasses

import torch
from torch import nn

from ..utils.errors import CheckpointError
from .table import NORMS, norm_of

BN_TENSORS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
COLUMNS = ('layers', 'exact', 'mapped', 'dropped', 'left at init')


def abbr(cls) -> 'str | None':
    """The name prefix mmcv's ``build_norm_layer`` gives a norm of class ``cls`` (as
    ``mmcv.cnn.bricks.norm.infer_abbr``): its ``_abbr_``, 'bn' for a BN, 'gn' for GroupNorm."""
    if hasattr(cls, '_abbr_'):
        return cls._abbr_
    if issubclass(cls, nn.modules.batchnorm._BatchNorm):
        return 'bn'
    return 'gn' if issubclass(cls, nn.GroupNorm) else None


def map_bn_tensors(norm: nn.Module, bn: dict) -> tuple:
    """What ``norm`` takes from a BN's tensors ``bn`` (some of ``BN_TENSORS`` -> tensor):
    ``({name in norm's state_dict: tensor}, how, used)``, ``how`` 'exact' for a norm that
    normalises as BN does (it keeps a running mean), 'mapped' for the others, ``used`` the BN
    tensors it read (the rest have no counterpart in ``norm``)."""
    own = norm.state_dict(keep_vars=True)
    bn = {k: v for k, v in bn.items() if v is not None}
    out, used = {}, set()
    weight = 'weight' if 'weight' in own else 'scale'  # RBN names its BN scale `scale`
    for src, dst in (('weight', weight), ('bias', 'bias')):
        if src in bn and dst in own:
            out[dst], used = bn[src], used | {src}
    if 'running_mean' in own:  # BN's statistics, as they are
        for k in BN_TENSORS[2:]:
            if k in bn and k in own:
                out[k], used = bn[k], used | {k}
        return out, 'exact', used
    if 'running_var' in own and {'running_mean', 'running_var'} <= set(bn):
        # MABN normalises by the second moment: E[x^2] = var + mean^2
        out['running_var'] = bn['running_var'] + bn['running_mean'].square()
        used |= {'running_mean', 'running_var'}
    return out, 'mapped', used


def _join(*parts) -> str:
    return '.'.join(p for p in parts if p)


def _norm_sources(model: nn.Module) -> list:
    """(name, norm module, kind, [paths its BN may have in a checkpoint, first match wins]) for
    every norm of ``model``."""
    modules = dict(model.named_modules())
    out = []
    for name, m in modules.items():
        spec = norm_of(m)
        if spec is None:
            continue
        path, level = name, None
        parent, _, index = name.rpartition('.')
        holder, _, field = parent.rpartition('.')
        if field == 'norms' and index.isdigit() and hasattr(modules.get(holder), 'level'):
            path, level = holder, index  # a PerLevelNorm's copy for pyramid level `index`
        parent, _, last = path.rpartition('.')
        prefix = abbr(type(m))
        if prefix and last.startswith(prefix):
            last = 'bn' + last[len(prefix):]
        bn = _join(parent, last)
        out.append((name, m, spec.name, ([_join(bn, 'norms', level)] if level else []) + [bn]))
    return out


@dataclasses.dataclass
class LoadReport:
    """What a BN checkpoint loaded into: per kind of module (a norm's name, or the class of
    another module: Conv2d, CenConv2d, Linear) the counts of ``COLUMNS``; the checkpoint keys
    that load nowhere (``unknown``) and those of parts the model lacks (``skipped``); the
    model's tensors left at init, and among them those outside the norms (``missing``: the
    checkpoint lacks them)."""
    rows: dict = dataclasses.field(default_factory=dict)
    unknown: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    left_at_init: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    loaded: int = 0

    def row(self, kind: str) -> dict:
        return self.rows.setdefault(kind, dict.fromkeys(COLUMNS, 0))

    def table(self) -> str:
        width = max([len('kind'), *map(len, self.rows)])
        lines = ['  '.join([f"{'kind':<{width}}", *COLUMNS])]
        for kind in sorted(self.rows, key=lambda k: (k not in NORMS, k)):  # the norms first
            row = self.rows[kind]
            cells = (f'{row[c]:>{len(c)}}' for c in COLUMNS)
            lines.append('  '.join([f'{kind:<{width}}', *cells]))
        return '\n'.join(lines)


def remap_bn_state_dict(model: nn.Module, state_dict: dict, prefix: str = '') -> tuple:
    """``(state, report)``: the keys of ``state_dict`` under ``prefix`` turned into ``model``'s
    (``prefix`` kept), by the rules of the module docstring, and what went where
    (:class:`LoadReport`). Raises nothing: the caller decides about ``report.unknown``."""
    modules = dict(model.named_modules())
    own = model.state_dict(keep_vars=True)
    ckpt = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    report, out, consumed, read = LoadReport(), {}, {}, set()

    def owner(key: str) -> tuple:
        """(kind, module) of a tensor of the model: the nearest norm above it (DN's SC module
        belongs to its DNB), or the module that holds it."""
        parts = key.split('.')[:-1]
        for i in range(len(parts), -1, -1):
            spec = norm_of(modules['.'.join(parts[:i])])
            if spec is not None:
                return spec.name, '.'.join(parts[:i])
        return type(modules['.'.join(parts)]).__name__, '.'.join(parts)

    def kind_of(key: str) -> str:
        return owner(key)[0]

    def load(key, value, how, src=None):
        if tuple(value.shape) != tuple(own[key].shape):
            report.unknown.append(f'{src or key} (shape {tuple(value.shape)}, the model has '
                                  f'{tuple(own[key].shape)} in {key})')
        else:
            out[key] = value
            report.row(kind_of(key))[how] += 1

    for kind, _ in set(map(owner, own)):
        report.row(kind)['layers'] += 1
    for name, norm, kind, bn_paths in _norm_sources(model):
        names = set(norm.state_dict(keep_vars=True))
        same = {t: ckpt[_join(name, t)] for t in names | set(BN_TENSORS) if _join(name, t) in ckpt}
        if same and set(same) <= names:  # a checkpoint of this very norm (or of BN into BN)
            for t, value in same.items():
                load(_join(name, t), value, 'exact')
                consumed[_join(name, t)] = kind
                read.add(_join(name, t))
            continue
        for path in bn_paths:
            bn = {t: ckpt[_join(path, t)] for t in BN_TENSORS if _join(path, t) in ckpt}
            if bn:
                tensors, how, used = map_bn_tensors(norm, bn)
                for t, value in tensors.items():
                    load(_join(name, t), value, how, _join(path, 'weight' if t == 'scale' else t))
                consumed.update({_join(path, t): kind for t in bn})
                read.update(_join(path, t) for t in used)
                break
    for key, kind in consumed.items():  # BN tensors no norm here has a use for
        if key not in read:
            report.row(kind)['dropped'] += 1
    children = {k.split('.')[0] for k in own} | set(model._modules)
    for key, value in ckpt.items():
        if key in consumed:
            continue
        if key in own and key not in out:
            load(key, value, 'exact')
        elif key.split('.')[0] in children:
            report.unknown.append(key)
        else:
            report.skipped.append(key)
    for key in own:
        if key not in out:
            kind = kind_of(key)
            report.row(kind)['left at init'] += 1
            report.left_at_init.append(key)
            if kind not in NORMS:
                report.missing.append(key)
    report.loaded = len(out)
    return {prefix + k: v for k, v in out.items()}, report


def check_report(report: LoadReport, where: str, strict: bool = True) -> None:
    """Raise a CheckpointError for checkpoint tensors that load nowhere (``strict``), or for a
    checkpoint of which nothing loads."""
    def first(keys, n=6):
        return ', '.join(keys[:n]) + (f' (+{len(keys) - n} more)' if len(keys) > n else '')
    if report.loaded == 0:
        raise CheckpointError(
            f'{where}: no tensor of the checkpoint matches the model (its keys: '
            f'{first(report.unknown + report.skipped, 4)}); a detector checkpoint needs '
            "prefix='backbone.' (or the component's name), and the checkpoint must come from the "
            'same backbone class (mmdet names its layers otherwise than torchvision, except '
            "ResNet's)")
    if strict and report.unknown:
        raise CheckpointError(
            f'{where}: {len(report.unknown)} checkpoint tensors load nowhere in the model: '
            f'{first(report.unknown)}; use a checkpoint of the same architecture with BN (or '
            "this norm) where the model has its norms, or strict=False to skip them (in a "
            "config: init_cfg=dict(type='Pretrained', ..., strict=False))")


def load_bn_state_dict(model: nn.Module, state_dict: dict, strict: bool = True) -> LoadReport:
    """Load a BN model's ``state_dict`` into ``model`` (any norms, e.g. after
    ``convert_module``) by the rules of the module docstring; returns the :class:`LoadReport`.
    ``strict=False`` skips checkpoint tensors that load nowhere instead of raising."""
    state, report = remap_bn_state_dict(model, state_dict)
    check_report(report, type(model).__name__, strict)
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return report
