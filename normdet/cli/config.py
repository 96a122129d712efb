"""Load a config as the tools do: MMDetection's command-line conventions, then normdet's
preparation, once.

    cfg = load_config('configs/ssdlite_dnb.py', cfg_options={'train_cfg.max_epochs': 1})
    runner = build_runner(cfg)          # normdet.openmmlab.engine.build_runner
"""
import os.path as osp

import torch

from ..utils.errors import ConfigError
from .distributed import init_cpu_distributed


def load_config(path: str, cfg_options: dict = None, work_dir: str = None,
                launcher: str = 'none'):
    """The config at ``path`` with ``--cfg-options`` merged and the work dir decided as mmdet
    does: command line > config > work_dirs/<config name>."""
    if not osp.isfile(path):
        raise ConfigError(f'config {path!r} not found; the configs are in configs/, e.g. '
                          'configs/ssdlite_dnb.py')
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
    if launcher != 'none' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    if cfg.get('runner_type') == 'NormDetRunner':
        # here, once (build_runner does not prepare again), so data errors surface plainly
        prepare_config(cfg)
    return cfg
