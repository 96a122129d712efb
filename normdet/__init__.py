"""normdet: normalization layers for object detection (BN, SyncBN, GN, FRN, MABN, DN-B, DN-C, RBN).

The package is in levels, each a folder, each importing only the levels below it
(docs/architecture.md):

- ``normdet.utils``: plain-Python helpers (errors, atomic writes, the config walker);
- ``normdet.layers``: the layers, plain PyTorch;
- ``normdet.norms``: the norm table, ``convert_module`` and ``fold_norms``, plain PyTorch;
- ``normdet.data``: the embedded synthetic COCO-format dataset and the COCO checks;
- ``normdet.openmmlab``: the MMDetection/MMEngine glue, the only place that imports mmcv, mmdet
  or mmengine; a config registers it with ``custom_imports=dict(imports=['normdet.openmmlab'])``;
- ``normdet.cli``: what the tools share (arguments, config loading, work dirs, reports, launch);
- ``normdet.study``: the study of the papers' claims, from the runs' JSON records.

``import normdet`` needs torch only. The names of the glue (``convert_norm``, ``prepare_config``,
``NormDetRunner``, ...) stay reachable as ``normdet.<name>``: they import the glue on first use.
"""
import importlib

from .layers import DNB, DNC, FRN, MABN, RBN, CenConv2d, SyncBatchNorm
from .norms import convert_module, fold_norms

__version__ = '0.1.0'
__all__ = ['FRN', 'MABN', 'CenConv2d', 'DNB', 'DNC', 'RBN', 'SyncBatchNorm', 'convert_module',
           'fold_norms']

# name -> the glue module that defines it (imported on first use: it needs mmdet)
_GLUE = dict(convert_norm='normdet.openmmlab.models.convert',
             check_norm_types='normdet.openmmlab.models.convert',
             prepare_config='normdet.openmmlab.engine.prepare',
             NormDetRunner='normdet.openmmlab.engine.runner',
             NormDetStateHook='normdet.openmmlab.engine.hooks',
             NormDetCocoMetric='normdet.openmmlab.evaluation.metric')


def __getattr__(name):
    if name in _GLUE:
        return getattr(importlib.import_module(_GLUE[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
