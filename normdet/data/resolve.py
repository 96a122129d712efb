"""Point a detection config at its dataset: the embedded synthetic one or a COCO-format copy.

The data root is chosen, first match wins:

1. ``data_root`` in the config or on the command line (``--cfg-options data_root=/path/to/coco/``);
2. the environment variable ``NORMDET_DATA_ROOT``;
3. the embedded synthetic dataset, generated on first use (``normdet.data.ensure_synthetic_coco``,
   into ``$NORMDET_SYNTHETIC_DATA`` or ``data/synthetic_coco``). ``data_root='synthetic'`` forces it.
   The config's ``synthetic_data`` picks its preset (``'default'``, ``'benchmark'``: the mini
   configs' embedded benchmark) or gives generator arguments (a dict, optionally with
   ``preset=``); each variant has its own folder.

Every dataset of the train/val/test dataloaders (wrappers such as ``RepeatDataset`` included) gets
that root, is checked (``check_coco``: a missing path or a broken annotation file is a clear
error; ``validate_coco``: its annotations and every image, once per version of the files),
becomes a ``NormDetCocoDataset`` (mmdet's, which also counts what it drops and checks its
images when it is built), and gets the classes its annotation file declares; the heads get the matching
``num_classes`` and the COCO evaluators the dataset's own annotation file. So one config trains on
the 4-class synthetic data or on the 80 COCO classes without edits.
"""
import hashlib
import json
import os
import os.path as osp

from ..utils.config import walk
from ..utils.errors import DataError
from .synthetic import check_coco, ensure_synthetic_coco
from .validate import validate_coco

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def synthetic_root(spec=None) -> str:
    """Generate (or reuse) the synthetic dataset that ``spec`` (a preset name, or a dict of
    generator arguments with an optional ``preset``) describes; returns its root."""
    if spec is None or isinstance(spec, str):
        return ensure_synthetic_coco(preset=spec or 'default')
    args = dict(spec)
    preset = args.pop('preset', 'default')
    if not args:
        return ensure_synthetic_coco(preset=preset)
    tag = hashlib.sha256(json.dumps(sorted(args.items())).encode()).hexdigest()[:8]
    base = os.environ.get('NORMDET_SYNTHETIC_DATA', osp.join('data', 'synthetic_coco'))
    return ensure_synthetic_coco(f'{base.rstrip("/")}_{preset}_{tag}', preset=preset, **args)


def data_root_of(cfg) -> tuple:
    """(root, source) where source is 'config', 'env' or 'synthetic'; generates synthetic data."""
    root = cfg.get('data_root')
    resolved = cfg.get('normdet_data') or {}
    if root and root == resolved.get('root'):  # a prepared config: where its root came from
        return root, resolved['source']
    if root == 'synthetic':
        return synthetic_root(cfg.get('synthetic_data')), 'synthetic'
    if root:
        return root, 'config'
    if os.environ.get('NORMDET_DATA_ROOT'):
        return os.environ['NORMDET_DATA_ROOT'], 'env'
    return synthetic_root(cfg.get('synthetic_data')), 'synthetic'


def _datasets(node):
    """The leaf dataset configs (those with an ``ann_file``) inside a dataset config."""
    return [d for d, _ in walk(node) if 'ann_file' in d]


def _set_num_classes(model_cfg, n: int) -> None:
    """``num_classes = n`` in every component of the model but the RPN head (its one class is
    'object')."""
    for d, path in walk(model_cfg):
        if 'num_classes' in d and 'rpn_head' not in path:
            d['num_classes'] = n


def _loads_masks(dataset: dict) -> bool:
    """Whether a dataset config's pipeline loads instance masks (mmdet's LoadAnnotations)."""
    return any(isinstance(t, dict) and t.get('type') == 'LoadAnnotations' and t.get('with_mask')
               for t in dataset.get('pipeline') or [])


def resolve_data(cfg) -> dict:
    """Rewrite ``cfg`` in place as described in the module docstring; returns a summary dict
    (root, source, classes, ann_file of the evaluated split) for logs and reports."""
    root, source = data_root_of(cfg)
    cfg['data_root'] = root
    leaves = [(loader, ds) for loader in LOADERS if cfg.get(loader)
              for ds in _datasets(cfg[loader].get('dataset'))]
    found = {}  # classes -> annotation files declaring them
    for loader, ds in leaves:
        ds['data_root'] = root
        if ds.get('type') == 'CocoDataset':  # the same, saying what it drops
            # (normdet/openmmlab/datasets/coco_dataset.py)
            ds['type'] = 'NormDetCocoDataset'
        img_dir = (ds.get('data_prefix') or {}).get('img', '')
        cats = check_coco(root, ds['ann_file'], img_dir)
        validate_coco(root, ds['ann_file'], img_dir, trained=loader == 'train_dataloader',
                      masks=_loads_masks(ds))
        if cats is not None:
            found.setdefault(tuple(c['name'] for c in cats), set()).add(ds['ann_file'])
    if len(found) > 1:
        raise DataError(f'the annotation files under {root!r} disagree on the classes: '
                         + '; '.join(f'{sorted(files)}: {list(c)}' for c, files in found.items())
                         + '; use train and val files of the same dataset')
    if not found:
        raise DataError(f'no annotation file small enough to read the classes from under {root!r}; '
                         "set metainfo=dict(classes=(...)) on the datasets")
    classes = next(iter(found))
    for _, ds in leaves:
        ds['metainfo'] = dict(ds.get('metainfo') or {}, classes=classes)
    _set_num_classes(cfg['model'], len(classes))
    first = {}  # loader -> its first dataset: what its evaluator scores against
    for loader, ds in leaves:
        first.setdefault(loader, ds)
    for key, loader in (('val_evaluator', 'val_dataloader'), ('test_evaluator', 'test_dataloader')):
        evaluators = cfg.get(key)
        for ev in (evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]):
            if isinstance(ev, dict) and 'ann_file' in ev and loader in first:
                ev['ann_file'] = osp.join(root, first[loader]['ann_file'])
    evaluated = next((ds['ann_file'] for loader, ds in leaves if loader != 'train_dataloader'),
                     None)
    return dict(root=root, source=source, classes=classes, ann_file=evaluated)
