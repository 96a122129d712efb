"""The MMDetection/MMEngine glue: the only level of normdet that imports mmcv, mmdet or mmengine.

Importing it registers normdet's classes in MMEngine's root registries, where every OpenMMLab
scope (mmdet's included) and mmcv's builders find them. A config does it explicitly with

    custom_imports = dict(imports=['normdet.openmmlab'], allow_failed_imports=False)

(``configs/_base_/normdet_runtime.py``; the dumped config of every run keeps it), as an
MMDetection plugin project does; ``import normdet`` alone registers nothing. The import also lets
torch.load read mmengine's checkpoints (``stack_fixes.allow_mmengine_checkpoints``: mmdet's
``init_detector`` and ``DetInferencer`` load normdet's checkpoints; it changes nothing else of
the stack). Laid out as MMDetection is:

- ``models``: the layers' registration, the config rewrite of the norms (``convert_norm``), the
  FRN+TLU detector variants, per-level norms of shared heads, RBN's input normalisation;
- ``engine``: the runner, the config preparation, hooks, the training loop, checkpoint files,
  optimizer rules;
- ``evaluation``: the COCO metric;
- ``datasets``: the COCO dataset that says what it drops;
- ``config``: reading configs and ``--cfg-options`` with clear errors;
- ``stack_fixes``: fixes for known bugs of the pinned stack;
- ``deploy``: whole detectors built, folded, saved and loaded (tools/deploy.py).
"""
from . import datasets, engine, evaluation, models, stack_fixes  # noqa: F401  (registers)
from .engine import NormDetRunner, build_runner, prepare_config
from .models import check_norm_types, convert_norm

stack_fixes.allow_mmengine_checkpoints()  # fix 1 only: see stack_fixes' docstring


def register_all_modules(init_default_scope: bool = True) -> None:
    """mmdet's ``register_all_modules`` and normdet's (already registered by this import), for
    building models from configs outside a runner, as ``mmdet.utils.register_all_modules``."""
    from mmdet.utils import register_all_modules as register_mmdet
    register_mmdet(init_default_scope=init_default_scope)


__all__ = ['NormDetRunner', 'build_runner', 'check_norm_types', 'convert_norm', 'prepare_config',
           'register_all_modules']
