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

``import normdet`` imports nothing; ``normdet.DNB``, ``normdet.convert_module``,
``normdet.load_bn_state_dict`` and the other layer names need torch only, and the names of the
glue (``convert_norm``, ``prepare_config``, ``NormDetRunner``, ...) need mmdet: each is imported
on first use.
"""
import importlib

__version__ = '0.1.0'
__all__ = ['FRN', 'MABN', 'CenConv2d', 'DNB', 'DNC', 'RBN', 'SyncBatchNorm', 'convert_module',
           'fold_norms', 'load_bn_state_dict']

# name -> the module that defines it, imported on first use: ``import normdet`` itself imports
# nothing, so a tool can check the installed stack (normdet.cli.stack) before torch is imported
_LAZY = dict(**{name: 'normdet.layers' for name in __all__[:7]},
             convert_module='normdet.norms', fold_norms='normdet.norms',
             load_bn_state_dict='normdet.norms',
             # the glue: it needs mmdet
             convert_norm='normdet.openmmlab.models.convert',
             check_norm_types='normdet.openmmlab.models.convert',
             prepare_config='normdet.openmmlab.engine.prepare',
             NormDetRunner='normdet.openmmlab.engine.runner',
             NormDetStateHook='normdet.openmmlab.engine.hooks',
             NormDetCocoMetric='normdet.openmmlab.evaluation.metric')


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
