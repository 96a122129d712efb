"""normdet's training loop: MMEngine's epoch loop that also resumes inside an epoch."""
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop

from .hooks import NormDetStateHook, rng_state, set_rng_state


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
