"""The MMEngine runner of normdet configs: it prepares the config, then runs as MMEngine's own.

    runner_type = 'NormDetRunner'     # set by configs/_base_/normdet_runtime.py
    norm = 'DNB'                      # one of BN, SyncBN, GN, FRN, MABN, DNB, DNC, RBN
    norm_options = dict()             # extra arguments of normdet.convert_norm (num_groups, ...)

``prepare_config`` (called by ``NormDetRunner.from_cfg``, so also by mmdet's own tools/train.py)
1. points the datasets at the data root (``normdet.data.resolve_data``: synthetic by default,
   ``data_root=/path/to/coco/`` for real COCO) and sets the classes and ``num_classes``;
2. rewrites every BN of the model to ``norm`` with the method's companions
   (``normdet.convert_norm``; the batch per GPU of the train dataloader sizes MABN's buffer),
   points it at the fixed classes of ``normdet.stack_fixes`` and checks that every norm type
   exists;
3. adds ``NormDetStateHook``, which makes ``--resume`` exact: the random-number generators
   (python, numpy, torch CPU and CUDA, of every rank) are saved in each checkpoint and restored on
   resume, and validation runs with its own copy of them so that it does not shift the training
   randomness. (Data-loader workers are re-seeded identically each epoch when
   ``persistent_workers=False``, which normdet's configs set for training.)
It is idempotent: the prepared config (dumped into the work dir) prepares to itself.
"""
import copy
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS, RUNNERS
from mmengine.runner import Runner

from . import stack_fixes
from .convert import check_norm_types, convert_norm
from .data import resolve_data


def prepare_config(cfg):
    """Rewrite ``cfg`` in place as described in the module docstring; returns it."""
    if cfg.get('normdet_prepared'):
        return cfg
    cfg['normdet_data'] = resolve_data(cfg)
    # convert_norm takes the batch per GPU (MABN's buffer) from the train dataloader
    convert_norm(cfg, cfg.get('norm', 'BN'), **cfg.get('norm_options', {}))
    stack_fixes.fix_config(cfg.model)
    stack_fixes.fix_logging(cfg)
    check_norm_types(cfg.model)
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'NormDetStateHook' for h in hooks):
        hooks.append(dict(type='NormDetStateHook'))
    cfg['custom_hooks'] = hooks
    cfg['normdet_prepared'] = True
    return cfg


def rng_state() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class NormDetStateHook(Hook):
    """Saves what exact resumption needs beyond MMEngine's checkpoint: every rank's RNG state and
    the training world size (for the report). See the module docstring.

    ``Runner.save_checkpoint`` runs on rank 0 only, so the ranks' states are gathered just before
    the CheckpointHook saves (this hook's priority is higher than that hook's)."""
    priority = 'LOW'

    def __init__(self):
        self.loaded = None  # the 'normdet' entry of the last loaded checkpoint
        self._val_rng = self._gathered = self._ckpt_hook = None
        self.val_metrics = self.val_iter = None  # the last validation, for tools/train.py

    def after_train_epoch(self, runner) -> None:
        h = self._ckpt_hook
        if h is not None and h.by_epoch:  # once an epoch: cheap
            self._gathered = all_gather_object(rng_state())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        h = self._ckpt_hook
        if h is not None and not h.by_epoch and (
                h.every_n_train_iters(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_iter(runner))):
            self._gathered = all_gather_object(rng_state())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._gathered if self._gathered is not None else [rng_state()]
        checkpoint['normdet'] = dict(rng=states, world_size=get_world_size(),
                                     batch_per_gpu=runner.cfg.train_dataloader.batch_size)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loaded = checkpoint.get('normdet')

    def before_train(self, runner) -> None:
        # found once here, not on every iteration
        self._ckpt_hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if not (runner._resume and self.loaded and 'rng' in self.loaded):
            return
        states = self.loaded['rng']
        if len(states) != get_world_size():
            runner.logger.warning(f'checkpoint was written by {len(states)} processes, this run '
                                  f'has {get_world_size()}: random-number state not restored, '
                                  'the resumed run is statistically but not bit-wise the same')
            return
        set_rng_state(states[get_rank()])

    def before_val(self, runner) -> None:
        self._val_rng = rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.val_metrics, self.val_iter = metrics, runner.iter

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
            self._val_rng = None


@RUNNERS.register_module()
class NormDetRunner(Runner):
    """MMEngine's Runner, on a config prepared by ``prepare_config``, whose ``auto_scale_lr``
    follows the effective batch: processes x batch per process x gradient-accumulation steps
    (``optim_wrapper.accumulative_counts``; MMEngine's own rule ignores the accumulation)."""

    def scale_lr(self, optim_wrapper, auto_scale_lr=None):
        steps = getattr(optim_wrapper, '_accumulative_counts', 1)
        if auto_scale_lr and auto_scale_lr.get('enable') and steps > 1:
            self.logger.info(f'gradient accumulation over {steps} iterations: effective batch '
                             f'{steps * self.world_size * self.cfg.train_dataloader.batch_size}')
            auto_scale_lr = dict(auto_scale_lr,
                                 base_batch_size=auto_scale_lr['base_batch_size'] / steps)
        return super().scale_lr(optim_wrapper, auto_scale_lr)

    @classmethod
    def from_cfg(cls, cfg):
        stack_fixes.apply()
        cfg = prepare_config(copy.deepcopy(cfg))
        runner = super().from_cfg(cfg)
        data = cfg['normdet_data']
        runner.logger.info(f"normdet: norm {cfg.get('norm', 'BN')}, data {data['root']} "
                           f"({data['source']}, {len(data['classes'])} classes)")
        return runner
