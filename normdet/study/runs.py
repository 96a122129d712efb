"""Collect runs: tell, for every run folder, what the run was and what it gave.

A run is a work dir of tools/train.py (or of mmdet's own tools/train.py). Its files:
- ``coco_metrics.json`` (the report of tools/train.py or tools/test.py): what the run was
  (detector, norm, images per GPU, dataset, schedule, seed) and its metrics;
- ``sweep_run.json`` (tools/sweep.py): the run's status, so crashed and diverged runs, which have
  no metrics, still appear, and what the sweep asked for (norm, images per GPU, seed);
- ``*/vis_data/scalars.json`` (MMEngine's log of every logged iteration): loss and LR curves; a
  non-finite (or null) loss there marks the run as diverged; without ``coco_metrics.json`` (a run
  of mmdet's tools/train.py), its last validation gives the metrics, marked as such.

What a run was comes from its report, never from folder or file names. Only a run without a
report (one that did not finish, or one of mmdet's tools/train.py) is described by the config its
runner dumped (``<config name>.py``), read with MMEngine when it is installed (a note says so
when it is not), over what ``sweep_run.json`` says; the records in docs/study/runs need no config.

Runs are grouped by what they were: (detector, dataset, schedule, norm, images per GPU). Two
finished runs of one group with the same seed are duplicates: the newest result counts and the
others are flagged. Folders that look like runs (a log, a checkpoint, a dumped config) but hold
no result are kept as skipped, with the reason; nothing is dropped silently.
"""
import glob
import json
import math
import os.path as osp
from collections import defaultdict

from normdet.cli.curves import read_scalars
from normdet.cli.report import JSON_NAME, describe_schedule, detector_name, schedule_text
from normdet.utils.coco_metrics import TASKS
from normdet.utils.config import walk
from normdet.utils.errors import DataError

RUN_INFO = 'sweep_run.json'
# a group is a setting x norm x images per GPU; gpus: the processes that trained it
SETTING = ('detector', 'dataset', 'schedule', 'gpus')


def read_json(path):
    """A run's JSON file; a truncated or foreign one is a DataError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f'{path} is not valid JSON ({e}): the run was interrupted while writing '
                        'it, or the file was edited; train the run again or remove the file'
                        ) from None


def finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def last_validation(rows: list) -> dict:
    """The metrics of the last logged validation (``coco/bbox_mAP`` as ``bbox_mAP``), or None."""
    vals = [r for r in rows if any(f'coco/{t}_mAP' in r for t in TASKS)]
    if not vals:
        return None
    return {k.split('/', 1)[1]: v for k, v in vals[-1].items() if k.startswith('coco/')}


def dumped_config(work_dir: str):
    """The config the runner dumped into the work dir (the newest, if it trained several)."""
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    return configs[-1] if configs else None


def describe_config(path: str) -> dict:
    """What a run was, from its dumped config: detector, norm, images per GPU, dataset,
    schedule, seed. Needs MMEngine (imported here, not with the study)."""
    from normdet.openmmlab.config import read_config
    cfg = read_config(path)
    data = cfg.get('normdet_data') or {}
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    while 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
        dataset = dataset['dataset']
    return dict(detector=detector_name(cfg.model), norm=cfg.get('norm') or _norm_type(cfg.model),
                batch=(cfg.get('train_dataloader') or {}).get('batch_size'),
                dataset=data.get('root') or dataset.get('data_root'),
                schedule=schedule_text(describe_schedule(cfg)),
                seed=(cfg.get('randomness') or {}).get('seed'))


def _norm_type(model_cfg):
    """The first norm_cfg type in a model config (mmdet's own configs have no ``norm`` key)."""
    return next((d['norm_cfg']['type'] for d, _ in walk(model_cfg)
                 if isinstance(d.get('norm_cfg'), dict) and d['norm_cfg'].get('type')), None)


def _describe_report(report: dict) -> dict:
    """What a run was, from its ``coco_metrics.json``."""
    schedule = report.get('schedule')
    classes = (report.get('dataset') or {}).get('classes')
    return dict(detector=report.get('detector') or report.get('model'), norm=report.get('norm'),
                num_classes=len(classes) if classes else None,
                batch=(report.get('batch') or {}).get('per_gpu'),
                gpus=(report.get('batch') or {}).get('gpus'),
                dataset=(report.get('dataset') or {}).get('data_root'),
                schedule=schedule_text(schedule) if schedule else None, seed=report.get('seed'))


def _looks_like_a_run(work_dir: str) -> bool:
    return any(glob.glob(osp.join(work_dir, pattern)) for pattern in (
        'last_checkpoint', '*.pth', '*.py', '*/vis_data/scalars.json', '*/*.log'))


def _update(what: dict, new: dict) -> None:
    what.update({k: v for k, v in new.items() if v is not None})


def read_run(work_dir: str):
    """One run's description; None when the folder holds no run. A run without any result has
    ``status='skipped'`` and a ``reason``."""
    info_path, report_path = osp.join(work_dir, RUN_INFO), osp.join(work_dir, JSON_NAME)
    info = read_json(info_path) if osp.isfile(info_path) else {}
    report = read_json(report_path) if osp.isfile(report_path) else None
    if not (info or report or _looks_like_a_run(work_dir)):
        return None
    what = dict(detector=info.get('detector'), norm=info.get('norm'), batch=info.get('batch'),
                gpus=info.get('gpus', 1), dataset=info.get('data_root'), schedule=None,
                seed=info.get('seed'))
    # a resumed run's wall and CPU times are those of its last attempt: an interrupted attempt
    # (a killed session) records nothing
    run = dict(work_dir=work_dir, status=info.get('status'), notes=[], wall_s=info.get('wall_s'),
               cpu_s=info.get('cpu_s'), resumed='--resume' in (info.get('command') or ()))
    if report is not None:
        _update(what, _describe_report(report))
    elif config := dumped_config(work_dir):
        try:
            _update(what, describe_config(config))
            run['config'] = config
        except ImportError as e:  # no MMEngine: the run is what sweep_run.json says
            run['notes'].append(f'{osp.basename(config)} not read: {e}')
        except Exception as e:  # a broken or foreign .py file: say so, use the other sources
            run['notes'].append(f'{osp.basename(config)} unreadable ({type(e).__name__})')
    if what['dataset']:
        what['dataset'] = osp.normpath(what['dataset'])
    run.update(what)
    scalars = read_scalars(work_dir)
    run['curves'] = sorted((r for r in scalars if 'loss' in r and 'iter' in r),
                           key=lambda r: r['iter'])
    if report is not None:
        run.update(metrics=report.get('metrics') or {}, source=JSON_NAME,
                   mtime=osp.getmtime(report_path))
    elif last_validation(scalars) is not None:
        run.update(metrics=last_validation(scalars), source='log (last validation)',
                   mtime=max(osp.getmtime(p) for p in glob.glob(
                       osp.join(work_dir, '*', 'vis_data', 'scalars.json'))))
    else:
        run['metrics'] = None
    if any(not finite(r['loss']) for r in run['curves']):
        run['status'] = 'diverged'
    if run['status'] is None:
        run['status'] = 'done' if run['metrics'] else 'skipped'
    if run['status'] == 'done' and not run['metrics']:
        run['status'] = 'skipped'
    if run['status'] == 'skipped':
        run['reason'] = (f'no {JSON_NAME} and no validation in its log'
                         if not info else f'{RUN_INFO} says done, but it has no metrics')
    return run


def collect(work_dirs) -> list:
    """Runs found in or directly under the given folders (a sweep folder holds one run per
    sub-folder), skipped ones included. A folder that holds runs is not itself a run without a
    result (its sub-folders' logs made it look like one)."""
    runs, seen = [], set()
    for top in work_dirs:
        found = []
        for d in sorted(p for p in glob.glob(osp.join(top, '*')) if osp.isdir(p)):
            d = osp.abspath(d)
            if d not in seen:
                seen.add(d)
                found.append(read_run(d))
        found = [r for r in found if r is not None]
        d, own = osp.abspath(top), []
        if d not in seen:
            seen.add(d)
            run = read_run(d)
            if run is not None and not (found and run['status'] == 'skipped'):
                own = [run]
        runs += own + found
    return runs


def group_key(run) -> tuple:
    return tuple(run.get(k) for k in SETTING) + (run['norm'], run['batch'])


def mark_duplicates(runs) -> list:
    """Flag finished runs of the same group and seed: the newest result counts, the others get
    ``duplicate_of``. Returns the flagged runs."""
    by_seed = defaultdict(list)
    for r in runs:
        if r['status'] == 'done':
            by_seed[group_key(r) + (r['seed'],)].append(r)
    flagged = []
    for rs in by_seed.values():
        rs.sort(key=lambda r: r['mtime'], reverse=True)
        for r in rs[1:]:
            r['duplicate_of'] = rs[0]['work_dir']
            flagged.append(r)
    return flagged


def ssd_plateau(num_classes: int) -> float:
    """SSD's classification loss (per positive, hard negative mining at 3 negatives a positive)
    when every anchor predicts background at 0.75 and the classes alike, ln(4 C) + 3 ln(4/3):
    3.636 for 4 classes, the plateau a recipe must leave (docs/study/recipe.md)."""
    return math.log(4 * num_classes) + 3 * math.log(4 / 3)


def left_plateau(run):
    """The first logged iteration at which an SSD run's classification loss is 0.02 or more
    below its plateau (:func:`ssd_plateau`); 'never' for a run that did not leave it; None for a
    run that is not SSD (no such plateau) or whose classes or losses are not known."""
    if not str(run.get('detector') or '').startswith('SSD') or not run.get('num_classes'):
        return None
    losses = [(r['iter'], r['loss_cls']) for r in run.get('curves') or () if 'loss_cls' in r]
    if not losses:
        return None
    below = ssd_plateau(run['num_classes']) - 0.02
    return next((i for i, v in losses if finite(v) and v < below), 'never')


def ap(run, task='bbox', key='mAP'):
    """A counted run's ``<task>_<key>`` metric (AP by default); None for a run that did not
    finish, a duplicate, or a metric the run does not have."""
    if run['status'] != 'done' or 'duplicate_of' in run:
        return None
    return (run.get('metrics') or {}).get(f'{task}_{key}')
