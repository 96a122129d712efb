"""The engine level of the glue: the runner, its config preparation, hooks, loop, checkpoint
files and optimizer rules."""
from .checkpoints import find_last_checkpoint, load_weights, read_checkpoint
from .hooks import NormDetCheckpointHook, NormDetDivergenceHook, NormDetStateHook
from .loops import NormDetEpochBasedTrainLoop
from .optim import NormDetOptimWrapperConstructor, RBNOptimWrapperConstructor
from .prepare import prepare_config
from .progress import NormDetProgressLoggerHook
from .runner import NormDetRunner, build_runner, to_memory_format

__all__ = ['NormDetCheckpointHook', 'NormDetDivergenceHook', 'NormDetEpochBasedTrainLoop',
           'NormDetOptimWrapperConstructor', 'NormDetProgressLoggerHook', 'NormDetRunner',
           'NormDetStateHook',
           'RBNOptimWrapperConstructor', 'build_runner', 'find_last_checkpoint', 'load_weights',
           'prepare_config', 'read_checkpoint', 'to_memory_format']
