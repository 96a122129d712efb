"""The MMEngine runner of normdet configs: MMEngine's own, on a prepared config.

``NormDetRunner.from_cfg`` (MMEngine's entry: ``Runner.from_cfg``, ``RUNNERS.build``, mmdet's own
tools/train.py) prepares a copy of the config (``normdet.openmmlab.engine.prepare``);
``from_prepared`` builds from a config already prepared (normdet's tools prepare it when they load
it, ``normdet.cli.config.load_config``), so preparation runs once either way.

``channels_last = True`` in a config trains and evaluates the model in channels_last memory
(``to_memory_format``): its conv weights are converted once built, so every conv output, and
every norm's input, is channels_last; numerically it is the same model. normdet's layers have
channels_last paths of their own. On the 2-core CPU it trains SSDLite-mini faster with every norm
(docs/performance.md). The quick start runs in it; the other configs stay NCHW, the layout the
study was trained in.
"""
import contextlib
import copy
import logging
import os.path as osp
import sys

import torch
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ...utils.allocator import keep_freed_memory
from ...utils.errors import USER_ERRORS, CheckpointError, ConfigError, TrainingDiverged
from .. import stack_fixes
from .checkpoints import (check_finite, check_state_dict, checkpoints_in, find_last_checkpoint,
                          plain_checkpoint, read_checkpoint)
from .hooks import divergence_message, unwrapped
from .prepare import prepare_config


def to_memory_format(model, channels_last: bool):
    """``model`` with its 4-D parameters and buffers in channels_last memory if ``channels_last``,
    else in NCHW (in place: the parameters stay the same objects)."""
    return model.to(memory_format=torch.channels_last if channels_last else
                    torch.contiguous_format)


def _not_the_config(record) -> bool:
    """A logging filter: everything but MMEngine's 'Config:' dump."""
    return not str(record.msg).startswith('Config:\n')


@contextlib.contextmanager
def building(section: str):
    """A constructor's error while the runner builds ``section`` of the config (a wrong type or
    value that the checks before building could not see) as one ConfigError naming the section;
    normdet's own errors pass as they are."""
    try:
        yield
    except USER_ERRORS:
        raise
    except (TypeError, ValueError, KeyError) as e:
        detail = str(e).strip().strip('"').splitlines()[0] if str(e).strip() else ''
        raise ConfigError(f'{section}: cannot be built from the config: {type(e).__name__}: '
                          f'{detail}; fix {section} in the config or --cfg-options') from e


@RUNNERS.register_module()
class NormDetRunner(Runner):
    """MMEngine's Runner, on a config prepared by ``prepare_config``, whose ``auto_scale_lr``
    follows the effective batch: processes x batch per process x gradient-accumulation steps
    (``optim_wrapper.accumulative_counts``; MMEngine's own rule ignores the accumulation).

    Checkpoints are read with clear errors (``checkpoints.read_checkpoint``) and loaded
    strictly for evaluation and resumption (the missing and unexpected keys are listed); only
    ``load_from`` in training, which initialises a model that may differ (fine-tuning to other
    classes), stays non-strict as in MMEngine. ``--resume`` finds its checkpoint through
    ``checkpoints.find_last_checkpoint`` (relative names, moved work dirs). The config is
    dumped into the work dir once the run has loaded what it needs and starts, so a refused run
    (a checkpoint that does not fit, say) leaves the copy of the run before it as it was."""

    _strict_load = True
    _dump_pending = False

    def dump_config(self) -> None:  # called by Runner.__init__
        self._dump_pending = True

    def _log_env(self, env_cfg: dict) -> None:
        """MMEngine's environment report; the full config (some 500 lines) goes to the log file
        only, and the console says where it is."""
        console = [h for h in self.logger.handlers if not isinstance(h, logging.FileHandler)]
        for handler in console:
            handler.addFilter(_not_the_config)
        try:
            super()._log_env(env_cfg)
        finally:
            for handler in console:
                handler.removeFilter(_not_the_config)
        if self.cfg._cfg_dict:
            name = osp.basename(self.cfg.filename) if self.cfg.filename else 'a .py file'
            self.logger.info(f'Config: written to the log file, and dumped to '
                             f'{osp.join(self.work_dir, name)} when the run starts')

    def build_model(self, model):
        with building('model'):
            model = super().build_model(model)
        return to_memory_format(model, True) if self.cfg.get('channels_last') else model

    def build_optim_wrapper(self, optim_wrapper):
        with building('optim_wrapper'):
            return super().build_optim_wrapper(optim_wrapper)

    def build_param_scheduler(self, scheduler):
        with building('param_scheduler'):
            return super().build_param_scheduler(scheduler)

    def build_train_loop(self, loop):  # also builds train_dataloader
        with building('train_cfg / train_dataloader'):
            return super().build_train_loop(loop)

    def build_val_loop(self, loop):  # also builds val_dataloader and val_evaluator
        with building('val_cfg / val_dataloader / val_evaluator'):
            return super().build_val_loop(loop)

    def build_test_loop(self, loop):
        with building('test_cfg / test_dataloader / test_evaluator'):
            return super().build_test_loop(loop)

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
        configured = self._base_lrs()
        super().load_or_resume()
        resumed = self._base_lrs()
        if self._resume and self._load_from and configured and resumed and any(
                abs(a - b) > 1e-12 * max(abs(a), abs(b)) for a, b in zip(configured, resumed)):
            # MMEngine restores the optimizer's state: the checkpoint's LR wins over the config's
            message = (f'--resume: the checkpoint trained with base LR {resumed[0]:g}; this '
                       f"config's {configured[0]:g} is not used (the optimizer's state, its LR "
                       'and schedule included, comes from the checkpoint); to train with another '
                       'LR, start a new run (--work-dir DIR, or --overwrite)')
            self.logger.warning(message)
            print(f'[normdet] warning: {message}', file=sys.stderr, flush=True)
        if self._dump_pending:
            self._dump_pending = False
            super().dump_config()

    def _base_lrs(self) -> list:
        """The optimizer's base LR per parameter group (the schedulers' ``initial_lr``)."""
        wrapper = getattr(self, 'optim_wrapper', None)
        groups = getattr(wrapper, 'param_groups', None) or []
        return [g.get('initial_lr', g.get('lr')) for g in groups
                if isinstance(g.get('initial_lr', g.get('lr')), (int, float))]

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':  # after every hook: weights_only-readable
            plain_checkpoint(kwargs['checkpoint'])

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):  # noqa: B006  (MMEngine's signature)
        checkpoint = read_checkpoint(filename, map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = unwrapped(self)
        if strict or self._strict_load:
            check_state_dict(model, checkpoint, filename,
                             (self.cfg.get('train_dataloader') or {}).get('batch_size'))
            check_finite(checkpoint, filename)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    @classmethod
    def from_cfg(cls, cfg):
        """MMEngine's entry point: prepares a copy of ``cfg``, then builds."""
        return cls.from_prepared(prepare_config(copy.deepcopy(cfg)))

    @classmethod
    def from_prepared(cls, cfg):
        """Build from a config that ``prepare_config`` already prepared."""
        stack_fixes.apply()
        runner = super().from_cfg(cfg)
        data = cfg['normdet_data']
        runner.logger.info(f"normdet: norm {cfg.get('norm', 'BN')}, data {data['root']} "
                           f"({data['source']}, {len(data['classes'])} classes)")
        note = synthetic_note(cfg)
        if note and runner.rank == 0:  # said on the console, not only logged
            print(note, file=sys.stderr, flush=True)
        return runner


def synthetic_note(cfg):
    """The console line of a COCO config (not a mini one, made for the embedded benchmark) that
    runs on the synthetic dataset because no data root was given; None otherwise."""
    data = cfg.get('normdet_data') or {}
    if data.get('source') != 'synthetic' or cfg.get('synthetic_data') not in (None, 'default'):
        return None
    return (f"[normdet] note: no data_root given, so this COCO config runs on the embedded "
            f"synthetic dataset ({data['root']}); point it at COCO with --cfg-options "
            "data_root=/path/to/coco/ (or export NORMDET_DATA_ROOT=/path/to/coco/)")


def build_runner(cfg) -> Runner:
    """The runner of a loaded config: a ``NormDetRunner`` from the prepared config (normdet's
    configs), MMEngine's own Runner otherwise (a plain mmdet config). glibc's malloc is first set
    to reuse freed memory (``normdet.utils.allocator``)."""
    keep_freed_memory()
    if cfg.get('runner_type') == 'NormDetRunner':
        return NormDetRunner.from_prepared(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
