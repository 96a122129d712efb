"""A config checked before anything is built: every misspelt key or type is one ``ConfigError``
that names where it is, what was meant and what is accepted, instead of a constructor's
``TypeError`` minutes into a run, or a key that is silently ignored.

The family, not a list of cases:

- ``check_options`` (``--cfg-options``): a key the config does not have, beside one it has that
  is spelt almost the same (``nrom``, ``train_cfg.max_epoch``), is a typo, unless the config
  allows it on purpose (``allow_new_keys=['nrom']``);
- ``check_top_level``: a top-level key spelt almost like one that MMEngine or normdet reads
  (``nrom``) is a typo, unless allowed on purpose (``allow_new_keys``);
- ``check_counts``: every count the run reads (epochs, batch sizes, intervals, GN's groups) is a
  positive integer;
- ``check_norm_options``: every key of ``norm_options`` is an argument of ``convert_norm``, and
  every key of ``norm_options.layer_args`` an argument of the chosen norm's layer; a switch that
  has no effect with that norm (``sync_stats`` with BN) is a warning;
- ``check_types``: every component of the config that a registry builds (the model and its
  parts, optimizer, wrapper, schedulers, loops, datasets and their transforms, samplers,
  evaluators, hooks, visualizer) names a registered type, and passes only arguments its class
  takes (where the class does not take any keyword).

Each unknown name comes with the closest known ones (``difflib``).
"""
import difflib
import inspect
import sys

from mmdet.registry import (DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, METRICS, MODELS, OPTIM_WRAPPERS,
                            OPTIMIZERS, PARAM_SCHEDULERS, TASK_UTILS, TRANSFORMS, VISBACKENDS,
                            VISUALIZERS)
from mmengine.config import Config
from mmengine.runner import Runner

from ...norms import get_norm
from ...utils.config import walk
from ...utils.errors import ConfigError, is_count

# the top-level keys that MMEngine's Runner and normdet read: another key spelt almost like one
# of them is a typo (the config's own variables, such as train_pipeline, are spelt otherwise)
READ_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'} | {
    'runner_type', 'custom_imports', 'norm', 'norm_options', 'channels_last', 'data_root',
    'synthetic_data', 'normdet_data', 'allow_new_keys'}
# keys a parent builds with helpers of its own (mmcv's build_norm_layer pops requires_grad, ...)
BUILT_BY_PARENT = ('norm_cfg', 'conv_cfg', 'act_cfg', 'init_cfg', 'plugins')
# the switches of norm_options that ask for something only some norms do (the numbers, such
# as num_groups, are set for every norm by the base configs and simply unused by the others)
SWITCHES = {'sync_stats': lambda spec: spec.sync == 'option'}
# the counts a run reads: each, where the config sets it (None: the default), a positive integer
COUNTS = {
    'train_dataloader.batch_size': 'images per GPU',
    'train_cfg.max_epochs': 'epochs to train',
    'train_cfg.max_iters': 'iterations to train',
    'train_cfg.val_interval': 'epochs or iterations between validations',
    'auto_scale_lr.base_batch_size': 'the total batch the LR is set for',
    'default_hooks.logger.interval': 'iterations between log lines',
    'norm_options.num_groups': "GN's groups",
    'norm_options.target_batch': "the batch MABN's buffer spans",
    'norm_options.batch_per_gpu': 'images per GPU, for MABN',
}
# what a norm option changes, for the warning about one that changes nothing
OPTION_EFFECT = {
    'sync_stats': lambda spec: spec.sync == 'option',
    'num_groups': lambda spec: spec.name == 'GN',
    'target_batch': lambda spec: spec.name == 'MABN',
    'batch_per_gpu': lambda spec: spec.name == 'MABN',
    'input_bn': lambda spec: spec.data_preprocessor is not None,
    'per_level': lambda spec: spec.batch_stats,
}


def _closest(word: str, known) -> list:
    return difflib.get_close_matches(str(word), sorted(set(map(str, known))), n=3, cutoff=0.75)


def _meant(word, known) -> str:
    close = _closest(word, known)
    return f" (did you mean {' or '.join(close)}?)" if close else ''


def _warn(message: str) -> None:
    print(f'[normdet] warning: {message}', file=sys.stderr, flush=True)


def check_options(cfg, options: dict) -> None:
    """Refuse a ``--cfg-options`` key that adds a key the config lacks beside one it has that is
    spelt almost the same (call before merging them)."""
    allowed = set(options.get('allow_new_keys') or cfg.get('allow_new_keys') or ())
    for key in options:
        node, parts = cfg._cfg_dict if isinstance(cfg, Config) else cfg, key.split('.')
        for i, part in enumerate(parts):
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            path = '.'.join(parts[:i + 1])
            if isinstance(node, dict) and path not in allowed:
                close = _closest(part, node.keys())
                if close:
                    where = '.'.join(parts[:i])
                    meant = ' or '.join(f'{where}.{c}' if where else c for c in close)
                    raise ConfigError(
                        f'--cfg-options {key}: the config has no {path}; did you mean {meant}? '
                        f'(to add {path} on purpose: --cfg-options "allow_new_keys=[\'{path}\']")')
            break


def check_top_level(cfg) -> None:
    """Refuse a top-level key that is not one MMEngine or normdet reads but is spelt almost like
    one (``nrom = 'GN'`` would train BN)."""
    allowed = set(cfg.get('allow_new_keys') or ())
    for key in cfg.keys():
        if key in READ_KEYS or key in allowed or key.startswith('_') \
                or any(k in key for k in READ_KEYS):  # mini_optim_wrapper: a variable
            continue
        close = _closest(key, READ_KEYS)
        if close:
            raise ConfigError(f'config key {key!r} is not read by anything{_meant(key, close)} '
                              f'(to keep {key} on purpose: allow_new_keys=[{key!r}])')


def check_counts(cfg) -> None:
    """Every count of ``COUNTS`` that the config sets is a positive integer (0 epochs trained
    nothing and went on to evaluate the untrained model; a base batch of 0 divided by zero)."""
    for key, what in COUNTS.items():
        first, *rest = key.split('.')
        value = cfg.get(first)
        for part in rest:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not is_count(value):
            raise ConfigError(f'{key} must be a positive integer ({what}), got {value!r}')


def check_norm_options(cfg) -> None:
    """Every ``norm_options`` key an argument of ``convert_norm``, every ``layer_args`` key one
    of the norm's layer; a warning for an option that changes nothing with this norm."""
    from ..models.convert import convert_norm
    spec = get_norm(cfg.get('norm', 'BN'))
    options = dict(cfg.get('norm_options') or {})
    accepted = [p for p in inspect.signature(convert_norm).parameters if p not in ('cfg', 'norm')]
    for key in options:
        if key not in accepted:
            raise ConfigError(f'norm_options.{key}: not an option of the norm conversion'
                              f'{_meant(key, accepted)}; the options are {", ".join(accepted)}')
    for key, applies in SWITCHES.items():
        if options.get(key) and not applies(spec):
            _warn(f'norm_options.{key}={options[key]!r} has no effect with norm {spec.name}'
                  + (' (SyncBN always reduces over all processes)' if spec.sync == 'always'
                     else ''))
    conv_args = options.get('conv_args') or {}
    if conv_args and not spec.conv:
        raise ConfigError(f'norm_options.conv_args: the {spec.name} norm comes with no convolution '
                          'of its own (only MABN does: CenConv); drop conv_args')
    if conv_args:
        conv = inspect.signature(_companion_conv(spec.conv).__init__).parameters
        own = [p for p in conv if conv[p].kind is conv[p].KEYWORD_ONLY]
        for key in conv_args:
            if key not in own:
                raise ConfigError(f'norm_options.conv_args.{key}: {spec.conv} takes no argument '
                                  f'{key!r}{_meant(key, own)}; it takes {", ".join(own)}')
    layer_args = options.get('layer_args') or {}
    params = inspect.signature(spec.layer_class.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ('self', 'num_features', 'num_channels')]
    for key in layer_args:
        if key not in accepted:
            raise ConfigError(f'norm_options.layer_args.{key}: the {spec.name} layer '
                              f'({spec.layer_class.__name__}) takes no argument {key!r}'
                              f'{_meant(key, accepted)}; it takes {", ".join(accepted)}')


def _companion_conv(name: str):
    from mmengine.registry import MODELS
    return MODELS.get(name)


def _names(registry) -> set:
    """Every type name ``registry`` (and its parents) can build."""
    registry.import_from_location()
    names = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    return names


def _accepted(cls) -> list:
    """The keyword arguments ``cls`` takes, or None when it takes any (``**kwargs``)."""
    target = cls.__init__ if inspect.isclass(cls) else cls
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p != 'self']


def _check_component(node: dict, path: str, registry, extra=()) -> None:
    kind = node.get('type')
    if not isinstance(kind, str):
        return
    cls = registry.get(kind)
    if cls is None:
        raise ConfigError(f'{path}.type: unknown type {kind!r} in the {registry.name} registry'
                          f'{_meant(kind, _names(registry))}')
    accepted = _accepted(cls)
    if accepted is None:
        return
    accepted = list(accepted) + list(extra)
    for key in node:
        if key not in accepted and key not in ('type', '_scope_'):
            raise ConfigError(f'{path}.{key}: {kind} takes no argument {key!r}'
                              f'{_meant(key, accepted)}; it takes {", ".join(accepted)}')


def _model_parts(model: dict) -> None:
    """The model's components: those MODELS or TASK_UTILS know; a type neither knows is a typo
    when it is spelt almost like one of theirs (other dicts with a type, such as ``nms``, are
    read by their parent)."""
    names = None
    for node, path in walk(model):
        kind = node.get('type')
        # inside a part a parent builds (an init_cfg list's entries too: init_cfg[0])
        if not isinstance(kind, str) or any(part.split('[')[0] in BUILT_BY_PARENT
                                            for part in path.split('.')):
            continue
        for registry in (MODELS, TASK_UTILS):
            if registry.get(kind) is not None:
                _check_component(node, path, registry)
                break
        else:
            names = names or (_names(MODELS) | _names(TASK_UTILS))
            if _closest(kind, names):
                raise ConfigError(f'{path}.type: unknown type {kind!r}{_meant(kind, names)}')


def check_types(cfg) -> None:
    """Every registry-built component of ``cfg`` names a known type and only arguments it takes."""
    _model_parts(cfg.get('model') or {})
    wrapper = cfg.get('optim_wrapper') or {}
    if isinstance(wrapper, dict):
        if isinstance(wrapper.get('optimizer'), dict):
            _check_component(wrapper['optimizer'], 'optim_wrapper.optimizer', OPTIMIZERS)
        _check_component(wrapper, 'optim_wrapper', OPTIM_WRAPPERS,
                         extra=('optimizer', 'constructor', 'paramwise_cfg'))
    schedulers = cfg.get('param_scheduler') or []
    for i, s in enumerate([schedulers] if isinstance(schedulers, dict) else schedulers):
        _check_component(s, f'param_scheduler[{i}]', PARAM_SCHEDULERS,
                         extra=('by_epoch', 'begin', 'end', 'convert_to_iter_based'))
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        loop = cfg.get(key)
        if isinstance(loop, dict):
            _check_component(loop, key, LOOPS, extra=('runner', 'dataloader', 'evaluator'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        if isinstance(loader.get('sampler'), dict):
            _check_component(loader['sampler'], f'{key}.sampler', DATA_SAMPLERS,
                             extra=('dataset', 'seed'))
        for node, path in walk(loader.get('dataset'), f'{key}.dataset'):
            kind = node.get('type')
            if not isinstance(kind, str):
                continue
            registry = next((r for r in (DATASETS, TRANSFORMS) if r.get(kind) is not None), None)
            if registry is not None:
                _check_component(node, path, registry)
            elif _closest(kind, _names(DATASETS) | _names(TRANSFORMS)):
                raise ConfigError(f'{path}.type: unknown type {kind!r}'
                                  f'{_meant(kind, _names(DATASETS) | _names(TRANSFORMS))}')
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        for i, ev in enumerate(evaluators if isinstance(evaluators, (list, tuple))
                               else [evaluators]):
            if isinstance(ev, dict):
                _check_component(ev, key if not isinstance(evaluators, (list, tuple))
                                 else f'{key}[{i}]', METRICS)
    for name, hook in (cfg.get('default_hooks') or {}).items():
        if isinstance(hook, dict):  # the runner takes a hook's priority
            _check_component(hook, f'default_hooks.{name}', HOOKS, extra=('priority',))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict):
            _check_component(hook, f'custom_hooks[{i}]', HOOKS, extra=('priority',))
    vis = cfg.get('visualizer')
    if isinstance(vis, dict):
        _check_component(vis, 'visualizer', VISUALIZERS)
        for i, backend in enumerate(vis.get('vis_backends') or []):
            _check_component(backend, f'visualizer.vis_backends[{i}]', VISBACKENDS)
