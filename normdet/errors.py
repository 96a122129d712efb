"""Errors in what the user gave (config, data), as opposed to bugs: the tools print their message
(which names the problem and the fix) without a traceback and exit with status 1."""


class ConfigError(ValueError):
    """A config names something that does not exist (an unknown norm, a bad option)."""


class DataError(ValueError):
    """A dataset is broken: an annotation file that is not COCO JSON, inconsistent classes."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset path (root, annotation file, image folder) does not exist."""
