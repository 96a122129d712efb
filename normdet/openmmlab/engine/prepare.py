"""Prepare a normdet config before its runner is built: one pass, in place.

    runner_type = 'NormDetRunner'     # set by configs/_base_/normdet_runtime.py
    norm = 'DNB'                      # one of BN, SyncBN, GN, FRN, MABN, DNB, DNC, RBN
    norm_options = dict()             # extra arguments of convert_norm (num_groups, ...)

``prepare_config``
0. checks the config before anything is built (``normdet.openmmlab.engine.validate``): a
   misspelt key, norm option, layer argument or component type is one error with a
   did-you-mean;
1. points the datasets at the data root (``normdet.data.resolve_data``: synthetic by default,
   ``data_root=/path/to/coco/`` for real COCO) and sets the classes and ``num_classes``;
2. refuses a batch of 1 image per process with a norm that needs batch statistics, naming the
   norms that work at batch 1; rewrites every BN of the model to ``norm`` with the method's
   companions (``convert_norm``; the batch per GPU of the train dataloader sizes MABN's buffer),
   points it at the fixed classes of ``normdet.openmmlab.stack_fixes`` and checks that every
   norm type exists;
3. makes ``--resume`` exact and training safe, with normdet's hooks and loop
   (``normdet.openmmlab.engine.hooks`` and ``loops``): every rank's random state and buffers in
   each checkpoint, resumption inside an epoch, checkpoints that nothing loses, a stop at the
   first non-finite loss.

It runs once per run: in ``normdet.cli.config.load_config`` for normdet's tools (so that a data
or config error surfaces before anything is built), or in ``NormDetRunner.from_cfg`` for
MMEngine's and mmdet's own entry points (``Runner.from_cfg``, mmdet's tools/train.py).
"""
import os

from ...data import resolve_data
from ...norms import batch_free_norms, get_norm
from ...utils.errors import ConfigError
from .. import stack_fixes
from ..models.convert import check_norm_types, convert_norm
from .progress import use_progress_logger
from .validate import check_counts, check_norm_options, check_top_level, check_types


def prepare_config(cfg):
    """Rewrite ``cfg`` in place as described in the module docstring; returns it. Idempotent: a
    prepared config (the one dumped into a work dir) prepares to itself."""
    check_top_level(cfg)
    check_counts(cfg)
    check_norm_options(cfg)
    check_batch(cfg)
    cfg['normdet_data'] = resolve_data(cfg)
    # convert_norm takes the batch per GPU (MABN's buffer) from the train dataloader
    convert_norm(cfg, cfg.get('norm', 'BN'), **cfg.get('norm_options', {}))
    stack_fixes.fix_config(cfg.model)
    stack_fixes.fix_logging(cfg)
    use_progress_logger(cfg)
    check_norm_types(cfg.model)
    hooks = list(cfg.get('custom_hooks') or [])
    for name in ('NormDetStateHook', 'NormDetDivergenceHook'):
        if not any(h.get('type') == name for h in hooks):
            hooks.append(dict(type=name))
    cfg['custom_hooks'] = hooks
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(ckpt, dict) and ckpt.get('type') == 'CheckpointHook':
        ckpt['type'] = 'NormDetCheckpointHook'
    loop = cfg.get('train_cfg')
    if isinstance(loop, dict) and loop.get('type') == 'EpochBasedTrainLoop':
        loop['type'] = 'NormDetEpochBasedTrainLoop'
    check_types(cfg)  # every component a known type with arguments it takes
    return cfg


def check_batch(cfg) -> None:
    """The train batch per process (a positive integer: ``check_counts``) is 1 only with a norm
    that needs no batch statistics (or that reduces them over several processes)."""
    batch = (cfg.get('train_dataloader') or {}).get('batch_size', 2)
    name = cfg.get('norm', 'BN')
    spec = get_norm(name)
    if batch > 1 or not spec.batch_stats:
        return
    synced = spec.sync == 'always' or (
        spec.sync == 'option' and (cfg.get('norm_options') or {}).get('sync_stats'))
    launched = cfg.get('launcher', 'none') != 'none'
    processes = int(os.environ.get('WORLD_SIZE', '1')) if launched else 1
    if synced and processes > 1:
        return
    raise ConfigError(
        f'train_dataloader.batch_size=1 with norm {name}: {name} normalises by batch statistics, '
        'which one image per process cannot give (its 1x1 feature maps hold one value per '
        f'channel); use at least 2 images per GPU, or a norm that works at batch 1: '
        f'{", ".join(batch_free_norms())} (--cfg-options norm={batch_free_norms()[0]})'
        + (', or SyncBN over several processes' if spec.sync != 'never' else ''))
