"""Errors the tools answer with one line (the problem and the fix), no traceback, exit status 1,
as opposed to bugs: ``normdet.cli.run.run_tool`` catches ``USER_ERRORS``."""
import os.path as osp


class ConfigError(ValueError):
    """A config names something that does not exist (an unknown norm, a bad option)."""


class ExportError(ConfigError):
    """A model that does not export (to ONNX), or whose export computes something else."""


class DataError(ValueError):
    """A dataset is broken: an annotation file that is not COCO JSON, inconsistent classes."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset path (root, annotation file, image folder) does not exist."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, does not fit the model, or cannot be written (full disk);
    or a work dir whose checkpoints a command would overwrite."""


class TrainingDiverged(RuntimeError):
    """The loss, the weights or a layer's statistics became non-finite (NaN/Inf): training stops
    before anything non-finite is saved."""


def is_count(value) -> bool:
    """A positive integer (not a bool): what every count of a config or a layer must be."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def path_problem(path: str, want: str = 'file', absent: str = 'not found') -> str:
    """What is wrong with ``path``, which should be a ``want`` ('file' or 'folder'), in the words
    of an error: ``absent``, or what it is instead."""
    if want == 'file' and osp.isdir(path):
        return 'is a folder, not a file'
    if want == 'folder' and osp.exists(path):
        return 'is a file, not a folder'
    return absent


# FloatingPointError: normdet's layers refuse non-finite statistics with a message of their own
USER_ERRORS = (ConfigError, DataError, CheckpointError, TrainingDiverged, FloatingPointError)
