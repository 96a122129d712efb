"""Fixes for what mmdet 3.3.0 + mmengine 0.10.7 break under torch >= 2.6. ``apply()`` installs the
process-wide ones, and ``NormDetRunner`` and the tools call it (idempotent; each fix is guarded by
the versions it is known for).

Importing the glue (``normdet.openmmlab``, which every normdet config's ``custom_imports`` and
every dumped config does) installs fix 1 alone (``allow_mmengine_checkpoints``), so that mmdet's
own ``init_detector``, ``DetInferencer`` and ``Runner.load_checkpoint`` read normdet's
checkpoints: they load inside mmdet and mmengine, where a config's ``custom_imports`` is
normdet's only hook. That is safe on import: it only adds to torch's ``weights_only``
allow-list the exact types mmengine writes into its checkpoints (a checkpoint still cannot run
code: tests/test_stack_fixes.py), so no load that worked before changes, and mmengine's own
checkpoints stop failing. Fixes 2 and 6 replace mmengine methods (how files are written, how a
config is formatted) that matter to training runs only: they wait for ``apply()``, which
``NormDetRunner`` calls, rather than change other code of the process on an import.

1. Checkpoints: torch.load defaults to ``weights_only=True`` (torch >= 2.6), which rejects the
   numpy arrays and scalars and mmengine ``HistoryBuffer`` objects in an mmengine checkpoint's
   message hub, so ``--resume`` fails. (normdet's own checkpoints no longer hold them:
   ``engine.checkpoints.plain_checkpoint``; this fix is for the others, and older ones.) Rather
   than unpickling anything (a checkpoint from elsewhere must not be able to run code), the exact
   types mmengine stores are allow-listed. ``HistoryBuffer``
   pickles its statistics methods through ``getattr``; the name ``builtins.getattr`` is mapped to a
   restricted getattr that resolves only those methods.
2. Checkpoints are not written atomically (mmengine <= 0.10.7): ``LocalBackend.put`` opens the final
   path and writes into it, so a crash (or a full disk) mid-save leaves a truncated ``epoch_N.pth``
   that ``last_checkpoint`` may already name. ``put`` and ``put_text`` go through
   ``normdet.utils.io.atomic_write``: a reader sees the old file or the complete new one.
3. ``SSDHead`` never sets ``loss_cls`` (mmdet <= 3.3.0), which ``BaseDenseHead._predict_by_feat_single``
   reads, so SSDLite validation fails with AttributeError. normdet registers the fixed subclass
   under its own name, ``NormDetSSDHead``; ``fix_config`` points a config's SSD heads at it.
4. mmengine (<= 0.10.7) writes its JSON logs with ``json.dump``, which writes ``NaN`` for an AP of
   a size range without ground truth (and ``Infinity`` for a diverged loss): strict JSON readers
   reject the files. ``NormDetLocalVisBackend`` (``vis_data/scalars.json`` and the
   ``vis_data/<timestamp>.json`` log beside it) and ``NormDetLoggerHook`` (the test run's
   ``<timestamp>.json``) write ``null`` instead, as ``coco_metrics.json`` does; ``fix_logging``
   points a config's visualizer backends and logger hook at them.
5. mmcv's RoI ops (mmcv <= 2.1.0, CPU) index their input as contiguous NCHW, so channels_last
   features (a config's ``channels_last = True``) give silently wrong RoI features.
   ``NormDetSingleRoIExtractor`` hands them NCHW features; ``fix_config`` points a config's RoI
   extractors at it.
6. ``Config.pretty_text`` formats the whole config with yapf on every read, and a training run
   reads it five times (the dumped config, the log, the runtime info hook, each checkpoint's
   meta): 0.6-1 s each on the 2-core machine. ``apply()`` memoises it on the config's content
   (the same text for the same dict, a new one once the config changes).
"""
import math
import pickle

import mmcv
import mmdet
import mmengine
import numpy as np
import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmengine.registry import HOOKS, MODELS, VISBACKENDS
from mmengine.config import Config
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.logging import HistoryBuffer
from mmengine.hooks import LoggerHook
from mmengine.utils import digit_version
from mmengine.visualization import LocalVisBackend

from ..utils.config import walk
from ..utils.io import atomic_write, strict_json

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


def _atomic_put(self, obj: bytes, filepath) -> None:
    atomic_write(filepath, obj)


def _atomic_put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    atomic_write(filepath, obj.encode(encoding))


_PRETTY_TEXT = Config.pretty_text  # mmengine's property
_PRETTY_MEMO = {}


def _memo_pretty_text(self) -> str:
    key = (self._format_python_code, repr(self.to_dict()))
    if _PRETTY_MEMO.get('key') != key:
        _PRETTY_MEMO.update(key=key, text=_PRETTY_TEXT.fget(self))
    return _PRETTY_MEMO['text']


@MODELS.register_module()
class NormDetSSDHead(SSDHead):
    """mmdet's SSDHead with the missing ``loss_cls`` attribute: softmax scores, as SSD intends.

    One option of its own, off by default: ``background_prior=p`` starts every anchor's softmax
    at background probability ``p`` (the background logit's bias ln(p C / (1 - p)) for C classes,
    the others 0), the prior of a classifier that knows nothing yet. With hard negative mining at
    3 negatives a positive, p = 0.75 is where SSD's classification loss plateaus (ln 16 +
    3 ln(4/3) for 4 classes): the head starts there instead of spending its first iterations
    reaching it (the recipe screen of docs/study/recipe.md)."""

    def __init__(self, *args, background_prior: float = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_cls = None
        if background_prior is not None and not 0 < background_prior < 1:
            raise ValueError(f'background_prior must be a probability in (0, 1), got '
                             f'{background_prior!r}')
        self.background_prior = background_prior

    def init_weights(self) -> None:
        super().init_weights()
        p = self.background_prior
        if p is None:
            return
        c = self.num_classes  # the background is the last of each anchor's C + 1 scores
        for branch in self.cls_convs:
            conv = [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            with torch.no_grad():
                conv.bias.view(-1, c + 1)[:, :c] = 0
                conv.bias.view(-1, c + 1)[:, c] = math.log(p * c / (1 - p))


@MODELS.register_module()
class NormDetSingleRoIExtractor(SingleRoIExtractor):
    """mmdet's SingleRoIExtractor whose RoI ops get NCHW features (fix 5); a no-op for NCHW.
    Under ``torch.export`` (tools/deploy.py --onnx) it runs every level's RoI op on every RoI
    and keeps each RoI's own level: the same features without mmdet's per-level indexing, whose
    data-dependent shapes the exporter cannot trace."""

    def forward(self, feats, rois, roi_scale_factor=None):
        feats = tuple(f.contiguous() for f in feats)
        if torch.compiler.is_exporting() and len(feats) > 1:
            return self._every_level(feats, rois.type_as(feats[0]), roi_scale_factor)
        return super().forward(feats, rois, roi_scale_factor)

    def _every_level(self, feats, rois, roi_scale_factor):
        levels = self.map_roi_levels(rois, len(feats))
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        out = 0
        for i, feat in enumerate(feats):
            out = out + self.roi_layers[i](feat, rois) * (levels == i).to(feat.dtype).view(
                -1, 1, 1, 1)
        return out


@VISBACKENDS.register_module()
class NormDetLocalVisBackend(LocalVisBackend):
    """mmengine's LocalVisBackend writing strict JSON: non-finite scalars become null (fix 4)."""

    def _dump(self, value_dict: dict, file_path: str, file_format: str) -> None:
        super()._dump(strict_json(value_dict) if file_format == 'json' else value_dict,
                      file_path, file_format)


@HOOKS.register_module()
class NormDetLoggerHook(LoggerHook):
    """mmengine's LoggerHook writing the test run's JSON log strictly: NaN becomes null (fix 4)."""

    @staticmethod
    def _process_tags(tags: dict):
        return strict_json(LoggerHook._process_tags(tags))


def _version(module) -> tuple:
    return digit_version(module.__version__)


TORCH_LOADS_WEIGHTS_ONLY = _version(torch) >= digit_version('2.6.0')
MMENGINE_PUT_NOT_ATOMIC = _version(mmengine) <= digit_version('0.10.7')
MMDET_SSDHEAD_LACKS_LOSS_CLS = _version(mmdet) <= digit_version('3.3.0')
MMENGINE_JSON_LOG_NAN = _version(mmengine) <= digit_version('0.10.7')
MMENGINE_PRETTY_TEXT_UNCACHED = _version(mmengine) <= digit_version('0.10.7')
MMCV_ROI_OPS_NCHW_ONLY = _version(mmcv) <= digit_version('2.1.0')


def allow_mmengine_checkpoints() -> None:
    """Fix 1: torch.load(weights_only=True) reads mmengine's checkpoints (run on import)."""
    if TORCH_LOADS_WEIGHTS_ONLY:
        torch.serialization.add_safe_globals(MMENGINE_CHECKPOINT_GLOBALS)


def apply() -> None:
    """Install the process-wide fixes (1, 2 and 6) where the installed versions need them."""
    allow_mmengine_checkpoints()
    if MMENGINE_PUT_NOT_ATOMIC:
        LocalBackend.put = _atomic_put
        LocalBackend.put_text = _atomic_put_text
    if MMENGINE_PRETTY_TEXT_UNCACHED:
        Config.pretty_text = property(_memo_pretty_text, doc=_PRETTY_TEXT.__doc__)


FIXED_TYPES = {  # the component types fixes 3 and 5 replace, wherever a model config has them
    'SSDHead': ('NormDetSSDHead', MMDET_SSDHEAD_LACKS_LOSS_CLS),
    'SingleRoIExtractor': ('NormDetSingleRoIExtractor', MMCV_ROI_OPS_NCHW_ONLY),
}


def fix_config(model_cfg) -> None:
    """Point every SSD head of a model config at ``NormDetSSDHead`` (fix 3) and every RoI
    extractor at ``NormDetSingleRoIExtractor`` (fix 5), in place."""
    for component, _ in walk(model_cfg):
        fixed, needed = FIXED_TYPES.get(component.get('type'), (None, False))
        if needed:
            component['type'] = fixed


def fix_logging(cfg) -> None:
    """Point the config's local visualization backends at ``NormDetLocalVisBackend`` and its
    logger hook at ``NormDetLoggerHook`` (fix 4), in place."""
    if not MMENGINE_JSON_LOG_NAN:
        return
    for backend in (cfg.get('visualizer') or {}).get('vis_backends') or []:
        if isinstance(backend, dict) and backend.get('type') == 'LocalVisBackend':
            backend['type'] = 'NormDetLocalVisBackend'
    logger = (cfg.get('default_hooks') or {}).get('logger')
    if isinstance(logger, dict) and logger.get('type') == 'LoggerHook':
        logger['type'] = 'NormDetLoggerHook'
