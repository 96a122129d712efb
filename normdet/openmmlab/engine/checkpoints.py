"""Checkpoint files: read them with a clear error, check that they fit the model, write them so
that nothing is lost, and find the one to resume from.

- ``read_checkpoint``: a missing, empty (0 bytes), truncated or foreign file is a
  ``CheckpointError`` naming the file and the fix, not a traceback from deep inside torch.load.
- ``check_state_dict``: strict loading for evaluation, deployment and resumption; lists the
  missing, unexpected and reshaped keys (mmengine loads non-strictly and only warns, so RetinaNet
  weights load into SSDLite, or MABN's into DN-B, and the tools exit 0).
- ``NormDetCheckpointHook``: mmengine's CheckpointHook (<= 0.10.7) deletes the oldest checkpoint
  of ``max_keep_ckpts`` *before* writing the new one (a kill in between leaves none), writes
  ``last_checkpoint`` in place and with an absolute path (a moved work dir cannot resume), and an
  interrupted save leaves its temporary file forever. This one writes the checkpoint, then
  ``last_checkpoint`` (atomically, relative to the work dir), and only then removes old ones (the
  previous best checkpoint too); a
  save that fails (a full disk) stops training with a message, the previous checkpoint and
  ``last_checkpoint`` intact; leftovers of interrupted saves are removed when training starts.
- ``find_last_checkpoint``: what ``last_checkpoint`` names, relative to the work dir, or in the
  work dir when an older absolute path no longer exists (the dir was moved).
- ``used_work_dir``: the checkpoints a new run would overwrite.
- ``plain_checkpoint`` / ``restore_checkpoint``: a normdet checkpoint holds tensors, numbers and
  strings only, so plain ``torch.load(weights_only=True)`` (torch >= 2.6's default, and so
  mmdet's ``init_detector`` and ``DetInferencer``) reads it in any process, with nothing of
  normdet imported. mmengine's checkpoints also hold its ``HistoryBuffer``s (the logged scalars)
  and numpy arrays (normdet's own random-number state); they are saved as marked dicts of tensors
  and turned back on reading (``read_checkpoint``), so resuming is unchanged.
"""
import glob
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

from ...utils.errors import CheckpointError, path_problem
from ...utils.io import atomic_write, write_leftovers

LAST = 'last_checkpoint'
NUMPY, HISTORY = '__normdet_numpy__', '__normdet_history_buffer__'  # markers of plain values


def _plain(obj):
    if isinstance(obj, HistoryBuffer):
        return {HISTORY: dict(log=_plain(obj._log_history), count=_plain(obj._count_history),
                              max_length=obj.max_length)}
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in 'biuf':
        return {NUMPY: torch.from_numpy(np.array(obj)), 'scalar': isinstance(obj, np.generic)}
    if type(obj) in (dict, OrderedDict):
        return type(obj)((k, _plain(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _restore(obj):
    if isinstance(obj, dict):
        if HISTORY in obj:
            h = obj[HISTORY]
            return HistoryBuffer(_restore(h['log']), _restore(h['count']), h['max_length'])
        if NUMPY in obj:
            a = obj[NUMPY].numpy()
            return a[()] if obj.get('scalar') else a
    if type(obj) in (dict, OrderedDict):
        return type(obj)((k, _restore(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_restore(v) for v in obj)
    return obj


def plain_checkpoint(checkpoint: dict) -> dict:
    """``checkpoint`` (in place, the weights untouched) with mmengine's ``HistoryBuffer``s and
    every numeric numpy value as marked dicts of tensors: what ``weights_only`` loading reads."""
    for key in [k for k in checkpoint if k != 'state_dict']:
        checkpoint[key] = _plain(checkpoint[key])
    return checkpoint


def restore_checkpoint(checkpoint: dict) -> dict:
    """The inverse of ``plain_checkpoint`` (in place); a checkpoint without markers is unchanged."""
    for key in [k for k in checkpoint if k != 'state_dict']:
        checkpoint[key] = _restore(checkpoint[key])
    return checkpoint


def _few(names, n: int = 5) -> str:
    names = list(names)
    return ', '.join(names[:n]) + (f', ... ({len(names) - n} more)' if len(names) > n else '')


def checkpoints_in(folder: str) -> list:
    """The checkpoint files (*.pth) in ``folder``, by name."""
    return sorted(osp.basename(p) for p in glob.glob(osp.join(glob.escape(folder), '*.pth')))


def _others(path: str) -> str:
    others = [c for c in checkpoints_in(osp.dirname(path) or '.') if c != osp.basename(path)]
    return f' (beside it: {_few(others)})' if others else ''


def read_checkpoint(path: str, map_location='cpu', mmap: bool = False) -> dict:
    """The checkpoint at ``path`` (a local file, or any URL mmengine reads), loaded with
    ``weights_only=True`` (through normdet's allow-list once ``stack_fixes.apply()`` ran).
    ``mmap=True`` maps a local file instead of reading it (cheap, for its meta data)."""
    path = os.fspath(path)
    local = '://' not in path
    if local and not osp.isfile(path):
        raise CheckpointError(f'checkpoint {path!r} {path_problem(path)}{_others(path)}; check '
                              'the path')
    if local and osp.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path!r} is empty (0 bytes), the trace of an '
                              f'interrupted copy or download{_others(path)}: copy it again or '
                              'use another checkpoint')
    try:
        if local:
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        else:
            from mmengine.runner.checkpoint import _load_checkpoint
            ckpt = _load_checkpoint(path, map_location=map_location)
    except pickle.UnpicklingError as e:
        reason = next((line.strip() for line in str(e).splitlines() if 'global' in line.lower()),
                      None)
        if reason is None:  # not a pickle of objects at all (a text file): no checkpoint
            raise CheckpointError(f'checkpoint {path!r} is not a PyTorch checkpoint (its bytes '
                                  f'are no pickle){_others(path)}: check the path, or use '
                                  'another checkpoint') from None
        raise CheckpointError(f'checkpoint {path!r} was refused: it holds more than weights '
                              f'({reason}); load it only if you trust its source, with '
                              'torch.load(weights_only=False)') from None
    except (EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f'checkpoint {path!r} is truncated or not a PyTorch checkpoint '
                              f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})'
                              f'{_others(path)}: copy it again or use another checkpoint') from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path!r} holds a {type(ckpt).__name__}, not a checkpoint (a dict '
                              'of tensors, or one with a state_dict)')
    return restore_checkpoint(ckpt)


def state_dict_of(checkpoint: dict) -> dict:
    """The weights of a checkpoint (mmengine's, or a bare state_dict), without DDP's ``module.``."""
    state = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_state_dict(model, checkpoint: dict, path: str, batch_per_gpu: int = None) -> None:
    """Raise a CheckpointError unless ``checkpoint`` holds exactly ``model``'s keys and shapes;
    ``batch_per_gpu`` (this run's) explains a difference in MABN's ring buffers."""
    theirs = state_dict_of(checkpoint)
    # a wrapped model (DDP, the test-time-augmentation model) holds the detector as ``module``
    ours = {re.sub(r'^module\.', '', k): v for k, v in model.state_dict().items()}
    shapes = [k for k in ours.keys() & theirs.keys()
              if hasattr(theirs[k], 'shape') and tuple(ours[k].shape) != tuple(theirs[k].shape)]
    rings = [k for k in shapes if k.endswith(('.x2_buffer', '.gz_buffer'))]
    if rings:
        trained = (checkpoint.get('normdet') or {}).get('batch_per_gpu', '?')
        k = rings[0]
        raise CheckpointError(
            f'checkpoint {path!r} was trained with {trained} images per GPU, whose MABN ring '
            f'buffers span {theirs[k].shape[0]} iterations; with this run\'s {batch_per_gpu} '
            f'they span {ours[k].shape[0]}, and loading would reset them. Keep the batch: '
            f'--cfg-options train_dataloader.batch_size={trained}, or keep the buffers with '
            f'the new batch: norm_options.batch_per_gpu={trained}')
    missing = sorted(ours.keys() - theirs.keys())
    unexpected = sorted(theirs.keys() - ours.keys())
    if missing or unexpected or shapes:
        reshaped = [f'{k} {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}'
                    for k in sorted(shapes)]
        parts = [f'{len(missing)} missing ({_few(missing)})' if missing else '',
                 f'{len(unexpected)} unexpected ({_few(unexpected)})' if unexpected else '',
                 f'{len(shapes)} of another shape ({_few(reshaped)})' if shapes else '']
        raise CheckpointError(
            f'checkpoint {path!r} does not fit the model of this config: keys '
            + '; '.join(p for p in parts if p)
            + '. Use the config it was trained with (its work dir holds a copy)')


def check_finite(checkpoint: dict, path: str) -> None:
    """Raise a CheckpointError naming the weights of ``checkpoint`` that hold NaN or Inf: a model
    with them detects nothing, and its report would say only 0 AP."""
    bad = [k for k, v in state_dict_of(checkpoint).items()
           if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f'checkpoint {path!r} holds non-finite weights (NaN/Inf) in '
                              f'{len(bad)} tensor(s): {_few(bad)}; it cannot be evaluated: use an '
                              'earlier checkpoint of the run')


def load_weights(model, path: str) -> dict:
    """Load ``path``'s weights into ``model`` strictly (CheckpointError otherwise); returns the
    checkpoint."""
    checkpoint = read_checkpoint(path)
    check_state_dict(model, checkpoint, path)
    check_finite(checkpoint, path)
    model.load_state_dict(state_dict_of(checkpoint), strict=True)
    return checkpoint


def find_last_checkpoint(work_dir: str, logger=None):
    """The checkpoint ``WORK_DIR/last_checkpoint`` names, or None without that file. A relative
    name is relative to the work dir; an absolute one that no longer exists but whose file is in
    the work dir (the dir was moved) is taken from there; otherwise a CheckpointError."""
    path = osp.join(work_dir, LAST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        name = f.read().strip()
    if not name:
        raise CheckpointError(f'{path} is empty; name the checkpoint to resume from: --resume '
                              f'{osp.join(work_dir, "epoch_N.pth")}')
    found = name if osp.isabs(name) else osp.join(work_dir, name)
    if osp.isfile(found):
        return found
    moved = osp.join(work_dir, osp.basename(name))
    if osp.isfile(moved):
        if logger is not None:
            logger.info(f'{path} names {name}, which is not there: the work dir was moved; '
                        f'resuming from {moved}')
        return moved
    here = checkpoints_in(work_dir)
    raise CheckpointError(
        f'{path} names {name}, which does not exist (the work dir was moved or cleaned?); '
        + (f'resume from one that exists: --resume {osp.join(work_dir, here[-1])} (here: '
           f'{_few(here)})' if here
           else 'this work dir holds no checkpoint: train without --resume'))


def used_work_dir(work_dir: str) -> list:
    """What a new training run in ``work_dir`` would overwrite or rewind: its checkpoints and
    ``last_checkpoint``."""
    if not osp.isdir(work_dir):
        return []
    return checkpoints_in(work_dir) + ([LAST] if osp.isfile(osp.join(work_dir, LAST)) else [])


def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
    """``last_checkpoint``, atomically, relative to the work dir when the checkpoint is in it."""
    rel = osp.relpath(checkpoint, work_dir)
    atomic_write(osp.join(work_dir, LAST), checkpoint if rel.startswith('..') else rel)


@HOOKS.register_module()
class NormDetCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook that loses nothing: see the module docstring."""

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        leftovers = sorted(set(write_leftovers(self.out_dir) + write_leftovers(runner.work_dir)))
        for path in leftovers:
            os.remove(path)
        if leftovers:
            runner.logger.info(f'removed {len(leftovers)} temporary file(s) of interrupted saves: '
                               f'{_few(osp.basename(p) for p in leftovers)}')

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # MMEngine removes the previous best checkpoint before it writes the new one: the
        # removals wait here until the new one is written
        backend, removed = self.file_backend, []
        backend.remove = removed.append
        try:
            super()._save_best_checkpoint(runner, metrics)
        except OSError as e:
            raise CheckpointError(
                f'could not write the best checkpoint into {self.out_dir}: {e.strerror or e}; '
                'nothing was lost (the previous best is kept). Free space there, then continue '
                'with --resume') from None
        finally:
            del backend.remove
        current = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                   *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
        for path in removed:
            if path not in current:  # a best checkpoint written again under its own name stays
                backend.remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)  # before the save: the checkpoint records them
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        previous = self.last_ckpt or runner.message_hub.get_info('last_ckpt')
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        writing = self.last_ckpt
        try:
            runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                                   by_epoch=self.by_epoch, backend_args=self.backend_args,
                                   **self.args)
            if is_main_process():
                writing = osp.join(runner.work_dir, LAST)
                write_last_checkpoint(runner.work_dir, self.last_ckpt)
        except OSError as e:
            kept = (f'{previous} (the previous checkpoint) is intact and {LAST} still names it'
                    if previous else 'no checkpoint had been written yet')
            raise CheckpointError(
                f'could not write {writing}: {e.strerror or e}; nothing was lost: {kept}. Free '
                f'space in {osp.dirname(writing)} (or train elsewhere with --work-dir), then '
                'continue with --resume') from None
        if not is_main_process():
            return
        for old in outdated:  # only now that the new checkpoint is durable
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed's checkpoints are folders
                self.file_backend.rmtree(path)
