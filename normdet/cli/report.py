"""The evaluation report a person reads: ``coco_metrics.json`` and ``coco_report.md`` in the work dir.

The JSON holds everything (model, norm, batch, schedule, optimizer and LR, checkpoint, dataset,
evaluation backend, the versions of the stack and normdet's git commit, every metric, per-class
AP); the Markdown shows the same as tables, AP in percent as papers print it. Both are written
atomically, so a crash never leaves a half report.
"""
import json
import math
import os.path as osp
import time

from ..utils.coco_metrics import PER_CLASS, SUMMARY, TASKS
from ..utils.io import atomic_write, strict_json
from .stack import git_commit, versions

JSON_NAME, MD_NAME = 'coco_metrics.json', 'coco_report.md'
HEAD = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')


def describe_model(model_cfg) -> str:
    if 'module' in model_cfg:  # a test-time-augmentation wrapper (tools/test.py --tta)
        return f"{describe_model(model_cfg['module'])} + TTA ({model_cfg['type']})"
    parts = [model_cfg.get(k, {}).get('type') for k in ('backbone', 'neck', 'bbox_head',
                                                         'rpn_head', 'roi_head')]
    return f"{model_cfg['type']} ({' + '.join(p for p in parts if p)})"


def detector_name(model_cfg) -> str:
    """A short name of the detector a model config builds: type and backbone, e.g.
    'RetinaNet ResNet50', 'SSD MobileNetV2' (a generic SingleStageDetector is named by its head;
    normdet's NormAct variants and TTA wrappers by the detector they hold)."""
    if 'module' in model_cfg:
        model_cfg = model_cfg['module']
    kind = model_cfg['type'].removeprefix('NormAct')
    if kind in ('SingleStageDetector', 'TwoStageDetector'):
        head = (model_cfg.get('bbox_head') or model_cfg.get('roi_head') or {}).get('type', kind)
        kind = head.removeprefix('NormDet').removesuffix('Head') or kind
    backbone = model_cfg.get('backbone') or {}
    return f"{kind} {backbone.get('type', '')}{backbone.get('depth', '')}".strip()


def describe_schedule(cfg) -> dict:
    """How long the config trains: epochs (and the dataset repeats of a RepeatDataset, as
    SSDLite's 600 epochs are 5 x 120) or iterations."""
    train = cfg.get('train_cfg') or {}
    if 'max_iters' in train or 'IterBased' in str(train.get('type', '')):
        return dict(by='iteration', max_iters=train.get('max_iters'))
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    repeats = dataset.get('times') if dataset.get('type') == 'RepeatDataset' else None
    return dict(by='epoch', max_epochs=train.get('max_epochs'), dataset_repeats=repeats)


def describe_optimizer(cfg, total_batch=None) -> dict:
    """The optimizer, its configured LR and, with ``auto_scale_lr`` enabled, the LR it ran with
    (MMEngine's linear rule: lr x total batch / base_batch_size; gradient accumulation counts)."""
    wrapper = cfg.get('optim_wrapper') or {}
    opt = wrapper.get('optimizer') or {}
    scale = cfg.get('auto_scale_lr') or {}
    lr, base = opt.get('lr'), scale.get('base_batch_size')
    scaled = None
    if scale.get('enable') and lr is not None and base and total_batch:
        scaled = lr * total_batch * wrapper.get('accumulative_counts', 1) / base
    return dict(type=opt.get('type'), lr=lr, auto_scale_lr=bool(scale.get('enable')),
                base_batch_size=base, lr_used=scaled if scaled is not None else lr)


def schedule_text(s: dict) -> str:
    if s['by'] == 'iteration':
        return f"{s['max_iters']} iterations"
    n, repeats = s['max_epochs'], s.get('dataset_repeats')
    return f"{n} epoch{'' if n == 1 else 's'}" + (
        f' of the dataset repeated {repeats}x' if repeats and repeats != 1 else '')


def optimizer_text(o: dict) -> str:
    text = f"{o['type']}, lr {o['lr']:g}" if o['lr'] is not None else str(o['type'])
    if o['base_batch_size']:
        text += f" for batch {o['base_batch_size']}"
    if o['auto_scale_lr'] and o['lr_used'] != o['lr']:
        text += f" (auto-scaled: {o['lr_used']:g})"
    return text


def build_report(cfg, metrics: dict, details: dict, *, checkpoint=None, data=None,
                 train_world_size=None, trained=None) -> dict:
    """Collect what the report shows. ``metrics`` are the evaluator's (``coco/bbox_mAP``, ...);
    ``trained``: what the weights went through (``NormDetStateHook.trained``: epochs, iterations,
    wall time, last loss, commands), where the schedule is what the config plans."""
    per_gpu = cfg.train_dataloader.batch_size if cfg.get('train_dataloader') else None
    data = data or {}
    tasks = {}
    for task in TASKS:
        if f'coco/{task}_mAP' in metrics:
            tasks[task] = dict(
                summary={k: metrics.get(f'coco/{task}_{k}') for k in SUMMARY},
                per_class=details.get(task, {}).get('per_class', []),
                num_detections=details.get(task, {}).get('num_detections'))
    total = per_gpu * train_world_size if per_gpu and train_world_size else None
    backend = next((d['backend'] for d in details.values() if d.get('backend')), None)
    return dict(
        config=cfg.filename, model=describe_model(cfg.model), detector=detector_name(cfg.model),
        norm=cfg.get('norm', 'BN'),
        batch=dict(per_gpu=per_gpu, gpus=train_world_size, total=total),
        schedule=describe_schedule(cfg), trained=trained or {},
        optimizer=describe_optimizer(cfg, total),
        seed=(cfg.get('randomness') or {}).get('seed'),
        checkpoint=checkpoint, date=time.strftime('%Y-%m-%d %H:%M:%S'),
        dataset=dict(data_root=data.get('root'), source=data.get('source'),
                     ann_file=data.get('ann_file'), classes=list(data.get('classes') or [])),
        evaluation=dict(backend=backend), versions=versions(), commit=git_commit(),
        metrics={k.split('/', 1)[-1]: v for k, v in metrics.items()}, tasks=tasks)


def _pct(v) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{100 * v:.1f}'


def trained_text(t: dict) -> str:
    """'1 epoch, 64 iterations in 4 min 10 s; last loss 2.1234' (what is known of it)."""
    if not t or t.get('iters') is None:
        return '-'
    parts = []
    if t.get('epochs') is not None:
        parts.append(f"{t['epochs']} epoch{'' if t['epochs'] == 1 else 's'}")
    text = ', '.join(parts + [f"{t['iters']} iterations"])
    if t.get('wall_s') is not None:
        m, sec = divmod(int(round(t['wall_s'])), 60)
        text += f' in {m} min {sec} s' if m else f' in {sec} s'
    if t.get('final_loss') is not None:
        text += f"; last loss {t['final_loss']:.4f}"
    return text


def to_markdown(r: dict) -> str:
    cmds = (r.get('trained') or {}).get('commands') or []
    b = r['batch']
    batch = (f"{b['per_gpu']} per GPU x {b['gpus']} GPU(s) = {b['total']}" if b['total']
             else f"{b['per_gpu']} per GPU")
    ds = r['dataset']
    lines = [f"# COCO evaluation: {osp.basename(r['config'] or 'model')}", '',
             '| | |', '|---|---|',
             f"| model | {r['model']} |", f"| norm | {r['norm']} |",
             f"| training batch | {batch} |", f"| trained | {trained_text(r.get('trained'))} |",
             f"| schedule (config) | {schedule_text(r['schedule'])} |",
             f"| optimizer | {optimizer_text(r['optimizer'])} |",
             f"| checkpoint | {r['checkpoint'] or '-'} |",
             f"| dataset | {ds['data_root']} ({ds['source']}), {ds['ann_file']}, "
             f"{len(ds['classes'])} classes |",
             f"| evaluation | {r['evaluation']['backend'] or '-'} |",
             f"| versions | {', '.join(f'{k} {v}' for k, v in r['versions'].items() if v)} |",
             f"| commit | {r['commit'] or '-'} |",
             f"| config | {r['config']} |", f"| date | {r['date']} |",
             *[f"| command{f' {i}' if len(cmds) > 1 else ''} | `{c}` |"
               for i, c in enumerate(cmds, 1)], '',
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
    atomic_write(json_path, json.dumps(strict_json(report), indent=2))
    atomic_write(md_path, to_markdown(report))
    return json_path, md_path
