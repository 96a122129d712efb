"""The evaluation report a person reads: ``coco_metrics.json`` and ``coco_report.md`` in the work dir.

The JSON holds everything (model, norm, batch, checkpoint, dataset, every metric, per-class AP);
the Markdown shows the same as tables, AP in percent as papers print it. Both are written
atomically, so a crash never leaves a half report.
"""
import json
import math
import os.path as osp
import time

from .evaluation import PER_CLASS, SUMMARY
from .io import atomic_write

JSON_NAME, MD_NAME = 'coco_metrics.json', 'coco_report.md'
HEAD = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')


def describe_model(model_cfg) -> str:
    parts = [model_cfg.get(k, {}).get('type') for k in ('backbone', 'neck', 'bbox_head',
                                                         'rpn_head', 'roi_head')]
    return f"{model_cfg['type']} ({' + '.join(p for p in parts if p)})"


def build_report(cfg, metrics: dict, details: dict, *, checkpoint=None, data=None,
                 train_world_size=None) -> dict:
    """Collect what the report shows. ``metrics`` are the evaluator's (``coco/bbox_mAP``, ...)."""
    per_gpu = cfg.train_dataloader.batch_size if cfg.get('train_dataloader') else None
    data = data or {}
    tasks = {}
    for task in ('bbox', 'segm'):
        if f'coco/{task}_mAP' in metrics:
            tasks[task] = dict(
                summary={k: metrics.get(f'coco/{task}_{k}') for k in SUMMARY},
                per_class=details.get(task, {}).get('per_class', []),
                num_detections=details.get(task, {}).get('num_detections'))
    return dict(
        config=cfg.filename, model=describe_model(cfg.model), norm=cfg.get('norm', 'BN'),
        batch=dict(per_gpu=per_gpu, gpus=train_world_size,
                   total=per_gpu * train_world_size if per_gpu and train_world_size else None),
        seed=(cfg.get('randomness') or {}).get('seed'),
        checkpoint=checkpoint, date=time.strftime('%Y-%m-%d %H:%M:%S'),
        dataset=dict(data_root=data.get('root'), source=data.get('source'),
                     ann_file=data.get('ann_file'), classes=list(data.get('classes') or [])),
        metrics={k.split('/', 1)[-1]: v for k, v in metrics.items()}, tasks=tasks)


def _pct(v) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{100 * v:.1f}'


def to_markdown(r: dict) -> str:
    b = r['batch']
    batch = (f"{b['per_gpu']} per GPU x {b['gpus']} GPU(s) = {b['total']}" if b['total']
             else f"{b['per_gpu']} per GPU")
    ds = r['dataset']
    lines = [f"# COCO evaluation: {osp.basename(r['config'] or 'model')}", '',
             '| | |', '|---|---|',
             f"| model | {r['model']} |", f"| norm | {r['norm']} |",
             f"| training batch | {batch} |", f"| checkpoint | {r['checkpoint'] or '-'} |",
             f"| dataset | {ds['data_root']} ({ds['source']}), {ds['ann_file']}, "
             f"{len(ds['classes'])} classes |",
             f"| config | {r['config']} |", f"| date | {r['date']} |", '',
             '## Metrics (COCO, %, maxDets 100)', '',
             '| task | ' + ' | '.join(HEAD) + ' |', '|---' * (len(HEAD) + 1) + '|']
    for task, t in r['tasks'].items():
        lines.append(f'| {task} | ' + ' | '.join(_pct(t['summary'][k]) for k in SUMMARY) + ' |')
    for task, t in r['tasks'].items():
        lines += ['', f'## Per-class AP, {task} (%; "-": no ground truth of that class)', '',
                  '| class | ' + ' | '.join(PER_CLASS) + ' |', '|---' * (len(PER_CLASS) + 1) + '|']
        for row in t['per_class']:
            lines.append(f"| {row['class']} | " + ' | '.join(_pct(row[k]) for k in PER_CLASS)
                         + ' |')
    return '\n'.join(lines) + '\n'


def write_report(work_dir: str, report: dict) -> tuple:
    """Write the JSON and Markdown into ``work_dir``; returns their paths."""
    json_path, md_path = osp.join(work_dir, JSON_NAME), osp.join(work_dir, MD_NAME)
    # NaN (class without ground truth) becomes null: strict JSON readers reject NaN
    clean = json.loads(json.dumps(report), parse_constant=lambda _: None)
    atomic_write(json_path, json.dumps(clean, indent=2))
    atomic_write(md_path, to_markdown(report))
    return json_path, md_path
