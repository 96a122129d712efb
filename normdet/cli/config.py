"""Load a config as the tools do: MMDetection's command-line conventions, then normdet's
preparation, once.

    cfg = load_config('configs/ssdlite_dnb.py', cfg_options={'train_cfg.max_epochs': 1})
    runner = build_runner(cfg)          # normdet.openmmlab.engine.build_runner
"""
import os
import os.path as osp

import torch

from ..utils.errors import ConfigError, path_problem
from .distributed import init_cpu_distributed


def load_config(path: str, cfg_options: dict = None, work_dir: str = None,
                launcher: str = 'none'):
    """The config at ``path`` with ``--cfg-options`` merged and the work dir decided as mmdet
    does: command line > config > work_dirs/<config name>."""
    if not osp.isfile(path):
        raise ConfigError(f'config {path!r} {path_problem(path)}; the configs are in configs/, '
                          'e.g. configs/ssdlite_dnb.py')
    from ..openmmlab.config import merge_options, read_config
    from ..openmmlab.engine.prepare import prepare_config
    cfg = read_config(path)
    cfg.launcher = launcher
    if cfg_options:
        merge_options(cfg, cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        raise ConfigError(f'work dir {cfg.work_dir!r} is a file, not a folder; choose another '
                          'with --work-dir DIR')
    check_runnable(cfg, path)
    if launcher == 'pytorch' and 'RANK' not in os.environ:
        raise ConfigError('--launcher pytorch outside torchrun (RANK is not set): run '
                          f'tools/dist_train.sh {path} N for N processes, or drop --launcher '
                          'for one process')
    if launcher != 'none' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    if cfg.get('runner_type') == 'NormDetRunner':
        # here, once (build_runner does not prepare again), so data errors surface plainly
        prepare_config(cfg)
    return cfg


# the keys only normdet reads: a config that sets them without normdet's runner would ignore them
NORMDET_KEYS = ('norm', 'norm_options', 'synthetic_data', 'channels_last')


def check_runnable(cfg, path: str) -> None:
    """A config the tools can run: it has a model, and a config that sets normdet's keys runs
    normdet's runner (configs/_base_/normdet_runtime.py), which is what reads them."""
    if not isinstance(cfg.get('model'), dict):
        raise ConfigError(f'config {path!r} defines no model: inherit a detector, e.g. '
                          "_base_ = ['configs/_base_/ssdlite.py'] (or configs/ssdlite_bn.py), "
                          'or an MMDetection config and configs/_base_/normdet_runtime.py')
    ignored = [k for k in NORMDET_KEYS if k in cfg]
    if ignored and cfg.get('runner_type') != 'NormDetRunner':
        raise ConfigError(f'config {path!r} sets {", ".join(ignored)} but does not run normdet\'s '
                          f'runner, which reads {"it" if len(ignored) == 1 else "them"}: add '
                          'configs/_base_/normdet_runtime.py to its _base_ (as '
                          'configs/_base_/ssdlite.py does)')
