"""Reading MMEngine configs with clear errors: a config file, and ``--cfg-options`` merged into it.

    cfg = read_config('configs/ssdlite_dnb.py')
    merge_options(cfg, {'train_cfg.max_epochs': 1})

``CfgOptions`` is MMEngine's ``--cfg-options KEY=VALUE ...`` parser with errors that name the
option. The tools load a config through ``normdet.cli.config.load_config``, which adds the work
dir, the launcher and the preparation.
"""
import ast
import os.path as osp
import re

from mmengine.config import Config, DictAction

from ..utils.errors import ConfigError
from .engine.validate import check_options


class CfgOptions(DictAction):
    """MMEngine's ``--cfg-options KEY=VALUE ...`` parser, with a ConfigError naming the option
    for one without ``=`` or with unbalanced brackets (MMEngine: a bare ValueError or
    AssertionError traceback)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            key, eq, val = kv.partition('=')
            if not (eq and key):
                raise ConfigError(f'--cfg-options {kv!r}: each option is KEY=VALUE, e.g. '
                                  'train_cfg.max_epochs=12 data_root=/data/coco/')
            if val.count('(') != val.count(')') or val.count('[') != val.count(']'):
                raise ConfigError(f'--cfg-options {kv!r}: unbalanced brackets in the value; a '
                                  "list is KEY=[1,2], a tuple KEY='(128,128)' (quoted for the "
                                  'shell)')
        super().__call__(parser, namespace, values, option_string)


def read_config(path: str) -> Config:
    """``Config.fromfile`` with a ConfigError for a config that cannot be read: a syntax error
    names the file (the config or one of its bases) and the line."""
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        # MMEngine parses the files without their names: find the one that fails
        err = _syntax_error_in(path)
        detail = (f'{err.filename}, line {err.lineno}: {err.msg}'
                  + (f': {err.text.strip()!r}' if err.text else '')) if err else str(e)
        raise ConfigError(f'syntax error in config {detail}; fix that line') from None
    except Exception as e:  # a bad _base_, a NameError, an import error in the config
        raise ConfigError(f'config {path!r} cannot be loaded: {type(e).__name__}: '
                          f'{str(e).splitlines()[0] if str(e) else ""}; fix the config') from None


def _syntax_error_in(path: str):
    """The SyntaxError of ``path`` or of one of its local ``_base_`` files, or None."""
    try:
        with open(path) as f:
            tree = ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        return e
    except OSError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_'
                                                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                found = None if '::' in base else _syntax_error_in(
                    osp.join(osp.dirname(path), base))
                if found:
                    return found
    return None


_MISSING = object()


def _lookup(cfg, key: str):
    """The value at a dotted ``--cfg-options`` key (list items by index), or _MISSING."""
    node = cfg
    for part in key.split('.'):
        if isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def merge_options(cfg: Config, options: dict) -> None:
    """Merge ``--cfg-options`` into ``cfg``; a ConfigError for a value that cannot be what the
    config holds there (a word for a number or a flag, a number for a section) or a key that
    cannot be set."""
    for key, value in options.items():
        parts = key.split('.')
        for i in range(1, len(parts)):
            above = _lookup(cfg, '.'.join(parts[:i]))
            if above is not _MISSING and not isinstance(above, (dict, list, tuple)):
                raise ConfigError(f'--cfg-options {key}: {".".join(parts[:i])} is {above!r}, not '
                                  f'a section; set it as a whole: {".".join(parts[:i])}=VALUE')
        old = _lookup(cfg, key)
        number = isinstance(old, (int, float)) and not isinstance(old, bool)
        if (number or isinstance(old, bool)) and isinstance(value, str):
            kind = 'a number' if number else 'True or False'
            raise ConfigError(f'--cfg-options {key}={value}: the config holds {kind} there '
                              f'({old!r}); give {kind}, e.g. {key}={old!r}')
        if isinstance(old, dict) and value is not None and not isinstance(value, dict):
            raise ConfigError(f'--cfg-options {key}={value}: {key} is a section of the config '
                              f'(keys {", ".join(list(old)[:5])}); set one of its keys, e.g. '
                              f'{key}.{next(iter(old), "KEY")}=...')
    check_options(cfg, options)  # a key spelt almost like one the config has: a typo
    try:
        cfg.merge_from_dict(options)
    except (KeyError, TypeError, IndexError) as e:
        reason = re.sub(r'(exceeds the length of list) .*', r'\1 there', str(e).strip('"'))
        raise ConfigError(f'--cfg-options {", ".join(options)}: {reason}') from None
