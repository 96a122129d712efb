"""Fixes for what mmdet 3.3.0 + mmengine 0.10.7 break under torch >= 2.6; applied by ``import normdet``.

1. Checkpoints: torch.load defaults to ``weights_only=True``, which rejects the numpy arrays and
   scalars and mmengine ``HistoryBuffer`` objects in an mmengine checkpoint's message hub, so
   ``--resume`` fails. Rather than unpickling anything (a checkpoint from elsewhere must not be
   able to run code), the exact types mmengine stores are allow-listed. ``HistoryBuffer`` pickles
   its statistics methods through ``getattr``; the name ``builtins.getattr`` is mapped to a
   restricted getattr that resolves only those methods.
2. Checkpoints are not written atomically: mmengine's ``LocalBackend.put`` opens the final path and
   writes into it, so a crash (or a full disk) mid-save leaves a truncated ``epoch_N.pth`` that
   ``last_checkpoint`` may already name, and ``--resume`` then fails. ``put`` and ``put_text``
   write to a temporary file in the same folder, fsync it and ``os.replace`` it over the target:
   a reader sees the old file or the complete new one, never a partial one.
3. ``SSDHead`` never sets ``loss_cls``, which ``BaseDenseHead._predict_by_feat_single`` reads, so
   SSDLite validation fails with AttributeError. The registered ``SSDHead`` is replaced by a
   subclass that sets ``loss_cls = None`` (softmax scores, as SSD intends); nothing else changes.
"""
import os
import os.path as osp
import pickle
import tempfile

import numpy as np
import torch
from mmdet.models.dense_heads import SSDHead as _MMDetSSDHead
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.logging import HistoryBuffer


# HistoryBuffer's built-in statistics (its registry of them fills only when one is instantiated)
_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


def _restricted_getattr(obj, name: str):
    if obj is HistoryBuffer and (name in _STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); normdet only allows HistoryBuffer '
        'statistics methods. Load it only if you trust its source (torch.load(weights_only=False))')


MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer, np.ndarray, np.dtype, np._core.multiarray._reconstruct,
    np._core.multiarray.scalar, (_restricted_getattr, 'builtins.getattr'),
    # the concrete dtype classes of numeric arrays and scalars (numpy 2 pickles dtypes by class)
    *{type(np.dtype(t)) for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
                                  'uint32', 'uint64', 'float16', 'float32', 'float64')},
]


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints (and nothing more)."""
    torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str, data) -> None:
    """Write ``data`` (bytes or str) to ``path`` so that it is either absent/old or complete."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_put(self, obj: bytes, filepath) -> None:
    atomic_write(filepath, obj)


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write(filepath, obj.encode(encoding))


LocalBackend.put = _atomic_put
LocalBackend.put_text = _atomic_put_text


class SSDHead(_MMDetSSDHead):
    """mmdet's SSDHead with the missing ``loss_cls`` attribute (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cls = None


MMDET_MODELS.register_module(name='SSDHead', module=SSDHead, force=True)
allow_mmengine_checkpoints()
