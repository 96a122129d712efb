"""Progress a person can wait on (``NormDetProgressLoggerHook``, the logger hook of every prepared
config):

- training logs every ``interval`` iterations (``default_hooks.logger.interval``, at most 20 in
  normdet's configs) **or** every ``log_interval_s`` seconds (30), whichever comes first: a slow
  iteration (a full detector on the CPU) no longer means minutes of silence;
- validation and testing say first how many images and batches are coming, then log with an
  ETA for the rest of the pass at the same rhythm (MMEngine's lines have none), then how long
  the pass took, before the COCO scoring starts.

The lines are MMEngine's own (``LogProcessor``), so ``tools/analyze_logs.py`` and the JSON log
read them as before; a line due to the time alone goes to the console and the text log only.
"""
import datetime
import time

from mmengine.registry import HOOKS

from ..stack_fixes import NormDetLoggerHook

MAX_INTERVAL = 20  # iterations: use_progress_logger lowers a longer logger interval to this


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


@HOOKS.register_module()
class NormDetProgressLoggerHook(NormDetLoggerHook):

    def __init__(self, *args, interval_s: float = 30, **kwargs):
        super().__init__(*args, **kwargs)
        self.interval_s = interval_s
        self._last = time.monotonic()
        self._pass_start = None

    # training ------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._last = time.monotonic()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        own = (self.every_n_inner_iters(batch_idx, self.interval)
               or self.end_of_epoch(runner.train_dataloader, batch_idx))
        if own:  # MMEngine's line (and the JSON log's row)
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
            self._last = time.monotonic()
        elif time.monotonic() - self._last >= self.interval_s:
            _, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
            runner.logger.info(log_str)
            self._last = time.monotonic()

    # validation and testing ----------------------------------------------------------------
    def _start(self, runner, mode: str, loader) -> None:
        self._pass_start = self._last = time.monotonic()
        images = len(getattr(loader, 'dataset', ()) or ())
        runner.logger.info(f'Epoch({mode}): {images} images in {len(loader)} batches ...')

    def _progress(self, runner, mode: str, loader, batch_idx: int) -> None:
        now = time.monotonic()
        done, total = batch_idx + 1, len(loader)
        per_batch = (now - self._pass_start) / done
        if done == total:
            runner.logger.info(f'Epoch({mode}): {total} batches in {_eta(now - self._pass_start)}'
                               f' ({per_batch:.3f} s/batch); scoring ...')
            return
        if not (self.every_n_inner_iters(batch_idx, self.interval)
                or now - self._last >= self.interval_s):
            return
        eta = _eta(per_batch * (total - done))
        runner.logger.info(f'Epoch({mode}) [{done}/{total}]  eta: {eta}  time: {per_batch:.3f} '
                           's/batch')
        self._last = now

    def before_val_epoch(self, runner) -> None:
        self._start(runner, 'val', runner.val_dataloader)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._progress(runner, 'val', runner.val_dataloader, batch_idx)

    def before_test_epoch(self, runner) -> None:
        self._start(runner, 'test', runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._progress(runner, 'test', runner.test_dataloader, batch_idx)


def use_progress_logger(cfg) -> None:
    """Make the config's logger hook ``NormDetProgressLoggerHook``, logging at least every
    ``MAX_INTERVAL`` iterations or every ``log_interval_s`` seconds (the config's top-level
    key, default 30), in place (idempotent)."""
    logger = (cfg.get('default_hooks') or {}).get('logger')
    if isinstance(logger, dict) and logger.get('type') in ('LoggerHook', 'NormDetLoggerHook',
                                                           'NormDetProgressLoggerHook'):
        logger['type'] = 'NormDetProgressLoggerHook'
        logger['interval'] = min(logger.get('interval', 10), MAX_INTERVAL)
        logger['interval_s'] = cfg.get('log_interval_s', 30)
