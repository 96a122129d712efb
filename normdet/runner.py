"""The MMEngine runner of normdet configs: it prepares the config, then runs as MMEngine's own.

    runner_type = 'NormDetRunner'     # set by configs/_base_/normdet_runtime.py
    norm = 'DNB'                      # one of BN, SyncBN, GN, FRN, MABN, DNB, DNC, RBN
    norm_options = dict()             # extra arguments of normdet.convert_norm (num_groups, ...)

``prepare_config`` (called by ``NormDetRunner.from_cfg``, so also by mmdet's own tools/train.py)
1. points the datasets at the data root (``normdet.data.resolve_data``: synthetic by default,
   ``data_root=/path/to/coco/`` for real COCO) and sets the classes and ``num_classes``;
2. refuses a batch of 1 image per process with a norm that needs batch statistics, naming the
   norms that work at batch 1; rewrites every BN of the model to ``norm`` with the method's
   companions (``normdet.convert_norm``; the batch per GPU of the train dataloader sizes MABN's
   buffer), points it at the fixed classes of ``normdet.stack_fixes`` and checks that every norm
   type exists;
3. makes ``--resume`` exact and training safe:
   - ``NormDetStateHook``: the random-number generators (python, numpy, torch CPU and CUDA) and
     the buffers (running statistics, MABN's ring buffers and counter) of every rank are saved in
     each checkpoint and restored to the same rank on resume (a checkpoint otherwise holds rank 0's
     model only, and with per-GPU statistics the ranks' buffers differ); validation runs with its
     own copy of the generators so that it does not shift the training randomness. (Data-loader
     workers are re-seeded identically each epoch when ``persistent_workers=False``, which
     normdet's configs set for training.)
   - ``NormDetEpochBasedTrainLoop``: resuming from an iteration checkpoint continues at the next
     batch of its epoch, instead of training the epoch again;
   - ``NormDetCheckpointHook`` (``normdet.checkpoints``): no checkpoint lost to a kill, a full
     disk or a moved work dir;
   - ``NormDetDivergenceHook``: training stops at the first non-finite loss, and never saves
     non-finite weights.
It is idempotent: the prepared config (dumped into the work dir) prepares to itself.

``channels_last = True`` in a config trains and evaluates the model in channels_last memory
(``to_memory_format``): its conv weights are converted once built, so every conv output, and
every norm's input, is channels_last; numerically it is the same model. normdet's layers have
channels_last paths of their own. On the 2-core CPU it trains SSDLite-mini faster with every norm
(docs/performance.md). The quick start runs in it; the other configs stay NCHW, the layout the
study was trained in.
"""
import copy
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, LOOPS, RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from . import stack_fixes
from .checkpoints import check_state_dict, checkpoints_in, find_last_checkpoint, read_checkpoint
from .convert import check_norm_types, convert_norm
from .data import resolve_data
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .layers._checks import nonfinite_layers
from .norms import batch_free_norms, get_norm


def prepare_config(cfg):
    """Rewrite ``cfg`` in place as described in the module docstring; returns it."""
    if cfg.get('normdet_prepared'):
        return cfg
    check_batch(cfg)
    cfg['normdet_data'] = resolve_data(cfg)
    # convert_norm takes the batch per GPU (MABN's buffer) from the train dataloader
    convert_norm(cfg, cfg.get('norm', 'BN'), **cfg.get('norm_options', {}))
    stack_fixes.fix_config(cfg.model)
    stack_fixes.fix_logging(cfg)
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
    cfg['normdet_prepared'] = True
    return cfg


def to_memory_format(model, channels_last: bool):
    """``model`` with its 4-D parameters and buffers in channels_last memory if ``channels_last``,
    else in NCHW (in place: the parameters stay the same objects)."""
    return model.to(memory_format=torch.channels_last if channels_last else
                    torch.contiguous_format)


def check_batch(cfg) -> None:
    """The train batch per process must be a positive integer, and 1 only with a norm that needs
    no batch statistics (or that reduces them over several processes)."""
    batch = (cfg.get('train_dataloader') or {}).get('batch_size', 2)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f'train_dataloader.batch_size must be a positive integer (images per '
                          f'GPU), got {batch!r}')
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
                     epoch_batches=self._epoch_batches)
        if len(states) > 1:
            entry['rank_buffers'] = [s['buffers'] for s in states]
        checkpoint['normdet'] = entry

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.loaded = loaded = checkpoint.get('normdet') or {}
        if not runner._resume:
            return
        done = loaded.get('epoch_batches', 0)
        now = (runner.cfg.train_dataloader.batch_size, get_world_size())
        then = (loaded.get('batch_per_gpu'), loaded.get('world_size'))
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
    saw non-finite statistics (``normdet.layers._checks.nonfinite_layers``, whose names the
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


@LOOPS.register_module()
class NormDetEpochBasedTrainLoop(EpochBasedTrainLoop):
    """MMEngine's epoch loop, which also resumes exactly from an iteration checkpoint (a
    CheckpointHook with ``by_epoch=False``): it continues at the batch after the checkpoint,
    where MMEngine's trains that epoch again from its first batch. The batches of the epoch
    already trained (``epoch_batches``, recorded by ``NormDetStateHook``) are loaded again, not
    trained, so that the sampler's order and the workers' random state are where they were (as
    MMEngine's IterBasedTrainLoop does), then the checkpoint's random state is restored. A
    mid-epoch checkpoint resumed with another batch size or number of processes is refused (its
    epoch would not continue where it stopped)."""

    def run(self):
        state = next((h for h in self.runner.hooks if isinstance(h, NormDetStateHook)), None)
        loaded = (state.loaded or {}) if state is not None and self.runner._resume else {}
        self._resume_batches = loaded.get('epoch_batches', 0)
        return super().run()

    def run_epoch(self) -> None:
        done, self._resume_batches = self._resume_batches, 0
        if not done:
            return super().run_epoch()
        n = len(self.dataloader)
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        self.runner.logger.info(f'resuming inside epoch {self._epoch + 1} after batch {done} of '
                                f'{n}: loading its trained batches again to restore the data order')
        if done < n:
            state = rng_state()
            batches = iter(self.dataloader)
            for _ in range(done):
                next(batches)
            set_rng_state(state)
            for idx, data_batch in enumerate(batches, start=done):
                self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@RUNNERS.register_module()
class NormDetRunner(Runner):
    """MMEngine's Runner, on a config prepared by ``prepare_config``, whose ``auto_scale_lr``
    follows the effective batch: processes x batch per process x gradient-accumulation steps
    (``optim_wrapper.accumulative_counts``; MMEngine's own rule ignores the accumulation).

    Checkpoints are read with clear errors (``normdet.checkpoints.read_checkpoint``) and loaded
    strictly for evaluation and resumption (the missing and unexpected keys are listed); only
    ``load_from`` in training, which initialises a model that may differ (fine-tuning to other
    classes), stays non-strict as in MMEngine. ``--resume`` finds its checkpoint through
    ``normdet.checkpoints.find_last_checkpoint`` (relative names, moved work dirs). The config is
    dumped into the work dir once the run has loaded what it needs and starts, so a refused run
    (a checkpoint that does not fit, say) leaves the copy of the run before it as it was."""

    _strict_load = True
    _dump_pending = False

    def dump_config(self) -> None:  # called by Runner.__init__
        self._dump_pending = True

    def build_model(self, model):
        model = super().build_model(model)
        return to_memory_format(model, True) if self.cfg.get('channels_last') else model

    def _init_model_weights(self):
        if not self.cfg.get('channels_last'):
            return super()._init_model_weights()
        # in NCHW: an in-place random init fills memory in order, so that the same seed gives the
        # same weights in either layout
        to_memory_format(self.model, False)
        super()._init_model_weights()
        to_memory_format(self.model, True)

    def scale_lr(self, optim_wrapper, auto_scale_lr=None):
        steps = getattr(optim_wrapper, '_accumulative_counts', 1)
        if auto_scale_lr and auto_scale_lr.get('enable') and steps > 1:
            self.logger.info(f'gradient accumulation over {steps} iterations: effective batch '
                             f'{steps * self.world_size * self.cfg.train_dataloader.batch_size}')
            auto_scale_lr = dict(auto_scale_lr,
                                 base_batch_size=auto_scale_lr['base_batch_size'] / steps)
        return super().scale_lr(optim_wrapper, auto_scale_lr)

    def train(self):
        self._strict_load = bool(self._resume)
        try:
            return super().train()
        except FloatingPointError as e:  # a layer refused non-finite statistics
            layer = str(e).split(';')[0]  # its name and what it saw; the fixes are said below
            raise TrainingDiverged(divergence_message(self, layer)) from None

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = find_last_checkpoint(self.work_dir, self.logger)
            here = checkpoints_in(self.work_dir)
            if self._load_from is None and here:  # training from the start would overwrite them
                raise CheckpointError(
                    f'--resume: {self.work_dir} holds checkpoints ({", ".join(here[:4])}) but no '
                    f'last_checkpoint naming the latest: name it, e.g. --resume '
                    f'{osp.join(self.work_dir, here[-1])}')
            if self._load_from is None:
                self.logger.warning(f'--resume: no checkpoint in {self.work_dir} yet '
                                    f'(no last_checkpoint): training from the start')
        super().load_or_resume()
        if self._dump_pending:
            self._dump_pending = False
            super().dump_config()

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):  # noqa: B006  (MMEngine's signature)
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = unwrapped(self)
        if strict or self._strict_load:
            check_state_dict(model, checkpoint, filename,
                             (self.cfg.get('train_dataloader') or {}).get('batch_size'))
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    @classmethod
    def from_cfg(cls, cfg):
        stack_fixes.apply()
        cfg = prepare_config(copy.deepcopy(cfg))
        runner = super().from_cfg(cfg)
        data = cfg['normdet_data']
        runner.logger.info(f"normdet: norm {cfg.get('norm', 'BN')}, data {data['root']} "
                           f"({data['source']}, {len(data['classes'])} classes)")
        return runner
