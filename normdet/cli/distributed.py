"""Distributed runs without GPUs: a gloo process group, and the model wrapped for the CPU."""
import datetime
import os

import torch

from ..utils.errors import ConfigError


def init_cpu_distributed(cfg) -> None:
    """Distributed training without GPUs (gloo): MMEngine's launcher calls torch.cuda.set_device
    and wraps the model for one GPU per process, which fails on a CPU-only machine. Initialise the
    process group here (MMEngine then skips its own) and wrap the model for CPU."""
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if cfg.launcher == 'slurm' and 'RANK' not in os.environ:
        raise ConfigError('--launcher slurm without GPUs: run through tools/slurm_train.sh')
    if not torch.distributed.is_initialized():
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch.distributed.init_process_group(backend='gloo', timeout=timeout)
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False,
                                 find_unused_parameters=cfg.get('find_unused_parameters', False))
