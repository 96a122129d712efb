"""normdet's hooks: exact resumption, a stop at divergence, checkpoints that nothing loses.

- ``NormDetStateHook``: the random-number generators (python, numpy, torch CPU and CUDA) and the
  buffers (running statistics, MABN's ring buffers and counter) of every rank are saved in each
  checkpoint and restored to the same rank on resume (a checkpoint otherwise holds rank 0's model
  only, and with per-GPU statistics the ranks' buffers differ); validation runs with its own copy
  of the generators so that it does not shift the training randomness. (Data-loader workers are
  re-seeded identically each epoch when ``persistent_workers=False``, which normdet's configs set
  for training.)
- ``NormDetDivergenceHook``: training stops at the first non-finite loss, and never saves
  non-finite weights.
- ``NormDetCheckpointHook`` (``normdet.openmmlab.engine.checkpoints``): no checkpoint lost to a
  kill, a full disk or a moved work dir.
"""
import random
import shlex
import sys
import time

import numpy as np
import torch
from mmengine.registry import HOOKS
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper

from ...layers._checks import nonfinite_layers
from ...utils.errors import CheckpointError, TrainingDiverged
from .checkpoints import NormDetCheckpointHook, find_last_checkpoint

__all__ = ['NormDetCheckpointHook', 'NormDetDivergenceHook', 'NormDetStateHook']


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


def unwrapped(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def rank_buffers(model) -> dict:
    """The model's buffers (running statistics, MABN's ring buffers and counter, ...) on the
    CPU, by state_dict key: with per-GPU statistics they differ between processes."""
    params = {name for name, _ in model.named_parameters()}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in params}


@HOOKS.register_module()
class NormDetStateHook(Hook):
    """Saves what exact resumption needs beyond MMEngine's checkpoint: every rank's RNG state and
    buffers, the training world size and batch (for the report and the checks). See the module
    docstring.

    ``Runner.save_checkpoint`` runs on rank 0 only, so the ranks' states are gathered just before
    the CheckpointHook saves (this hook's priority is higher than that hook's); on resume each
    rank puts its own buffers into the state_dict before it is loaded."""
    priority = 'LOW'

    def __init__(self):
        self.loaded = None  # the 'normdet' entry of the last loaded checkpoint
        self._val_rng = self._gathered = self._ckpt_hook = None
        self._epoch_batches = 0  # batches of the current epoch trained
        self.val_metrics = self.val_iter = None  # the last validation, for tools/train.py
        # what the weights went through: this process's training adds to the checkpoint's
        self._wall0 = self._start = None
        self._commands = []

    def trained(self, runner) -> dict:
        """What the current weights were trained with, for the report: epochs and iterations,
        wall time (over every resumed part), the last logged loss, and the command lines that
        trained them (``--cfg-options`` included); from this process's training, or else from
        the loaded checkpoint (``{}`` when neither)."""
        if self._start is not None:  # trained here
            return dict(epochs=runner.epoch, iters=runner.iter, wall_s=self._wall(),
                        final_loss=self._loss(runner), commands=self._commands)
        loaded = self.loaded or {}
        return {k: v for k, v in dict(
            epochs=loaded.get('epoch'), iters=loaded.get('iter'), wall_s=loaded.get('wall_s'),
            final_loss=loaded.get('final_loss'), commands=loaded.get('commands')).items()
            if v is not None}

    def _wall(self) -> float:
        return round(self._wall0 + time.monotonic() - self._start, 1)

    @staticmethod
    def _loss(runner):
        try:
            return float(runner.message_hub.get_scalar('train/loss').current())
        except (KeyError, AttributeError, TypeError, ValueError):
            return None

    def _local(self, runner) -> dict:
        return dict(rng=rng_state(),
                    buffers=rank_buffers(unwrapped(runner)) if get_world_size() > 1 else None)

    def after_train_epoch(self, runner) -> None:
        self._epoch_batches = 0  # the epoch is complete: a checkpoint now resumes at the next
        h = self._ckpt_hook
        if h is not None and h.by_epoch and (
                h.every_n_epochs(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_epoch(runner))):
            self._gathered = all_gather_object(self._local(runner))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._epoch_batches = batch_idx + 1
        h = self._ckpt_hook
        if h is not None and not h.by_epoch and (
                h.every_n_train_iters(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_iter(runner))):
            self._gathered = all_gather_object(self._local(runner))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a save the hook did not announce (a best checkpoint) holds this rank's state only
        states = self._gathered if self._gathered is not None else [self._local(runner)]
        self._gathered = None
        entry = dict(rng=[s['rng'] for s in states], world_size=get_world_size(),
                     batch_per_gpu=runner.cfg.train_dataloader.batch_size,
                     epoch_batches=self._epoch_batches, commands=self._commands,
                     wall_s=self._wall() if self._start is not None else None,
                     final_loss=self._loss(runner))
        if len(states) > 1:
            entry['rank_buffers'] = [s['buffers'] for s in states]
        checkpoint['normdet'] = entry

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loaded = loaded = dict(checkpoint.get('normdet') or {})
        meta = checkpoint.get('meta') or {}
        loaded.update(epoch=meta.get('epoch'), iter=meta.get('iter'))
        if not runner._resume:
            return
        done = loaded.get('epoch_batches', 0)
        now = (runner.cfg.train_dataloader.batch_size, get_world_size())
        then = (loaded.get('batch_per_gpu'), loaded.get('world_size'))
        from .loops import NormDetEpochBasedTrainLoop
        if done and now != then and isinstance(runner._train_loop, NormDetEpochBasedTrainLoop):
            raise CheckpointError(
                f"the checkpoint was saved inside epoch {checkpoint['meta']['epoch'] + 1}, after "
                f'its batch {done}, with {then[0]} images per GPU x {then[1]} process(es); this '
                f'run has {now[0]} x {now[1]}, so that epoch cannot continue where it stopped: '
                f'resume with --cfg-options train_dataloader.batch_size={then[0]} on {then[1]} '
                'process(es), or from an epoch checkpoint')
        buffers = loaded.get('rank_buffers')
        if buffers and len(buffers) == get_world_size():
            checkpoint['state_dict'].update(buffers[get_rank()])

    def before_train(self, runner) -> None:
        # found once here, not on every iteration
        self._ckpt_hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        resumed = (self.loaded or {}) if runner._resume else {}
        self._wall0, self._start = resumed.get('wall_s') or 0.0, time.monotonic()
        self._commands = list(resumed.get('commands') or []) + [
            shlex.join(['python', *sys.argv])]
        if not (runner._resume and 'rng' in (self.loaded or {})):
            return
        states = self.loaded['rng']
        if len(states) != get_world_size():
            runner.logger.warning(
                f'checkpoint was written by {len(states)} process(es), this run has '
                f'{get_world_size()}: the random-number state is not restored, and every process '
                "starts from rank 0's buffers (running statistics): the resumed run is "
                'statistically but not bit-wise the same')
            return
        if get_world_size() > 1 and 'rank_buffers' not in self.loaded:
            runner.logger.warning("checkpoint holds rank 0's buffers only (an older normdet "
                                  'wrote it): every process resumes with them')
        set_rng_state(states[get_rank()])

    def before_val(self, runner) -> None:
        self._val_rng = rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.val_metrics, self.val_iter = metrics, runner.iter

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
            self._val_rng = None


def divergence_message(runner, what: str, layers=(), iteration: int = None) -> str:
    """One line: where training went non-finite (``iteration``, 1-based: default the one in
    progress), what is kept, and the usual fixes."""
    try:
        last = find_last_checkpoint(runner.work_dir)
    except CheckpointError:
        last = None
    named = (f'; non-finite statistics in {len(layers)} layer(s): {", ".join(layers[:5])}'
             + (', ...' if len(layers) > 5 else '') if layers else '')
    kept = (f'the last finite checkpoint, {last}, stays the resume point' if last
            else 'no checkpoint was written before it')
    return (f'training diverged at iteration {iteration or runner.iter + 1} '
            f'(epoch {runner.epoch + 1}): {what}{named}. Nothing non-finite was saved; {kept}. '
            'Clip gradients (--cfg-options optim_wrapper.clip_grad.max_norm=10) or train in fp32 '
            '(without --amp), which --resume takes; or train again from the start with a lower '
            'learning rate (optim_wrapper.optimizer.lr=...) or a warm-up (a LinearLR '
            "param_scheduler), which --resume does not take (it restores the checkpoint's)")


@HOOKS.register_module()
class NormDetDivergenceHook(Hook):
    """Stops training at the first iteration whose loss is non-finite or in which a normdet layer
    saw non-finite statistics (``normdet.layers.nonfinite_layers``, whose names the
    message gives), with one line naming the iteration and the fixes; and refuses to save weights
    that hold NaN/Inf. It runs before the checkpoint hook, so a diverged iteration is never
    saved and ``last_checkpoint`` keeps naming the last finite checkpoint. One host
    synchronisation per iteration (MMEngine's logging makes one anyway)."""
    priority = 'NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        bad_loss = isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all())
        layers = nonfinite_layers(unwrapped(runner))
        if bad_loss or layers:
            what = (f'the loss is {loss.float().mean().item()} (non-finite)' if bad_loss
                    else 'the loss is finite but layer statistics are not (non-finite)')
            raise TrainingDiverged(divergence_message(runner, what, layers))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bad = [k for k, v in checkpoint['state_dict'].items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise TrainingDiverged(divergence_message(
                runner, f'{len(bad)} tensor(s) of the model became non-finite '
                        f'({", ".join(bad[:3])}{", ..." if len(bad) > 3 else ""})',
                iteration=checkpoint['meta']['iter']))
