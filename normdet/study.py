"""Compare runs: collect work dirs, tell what each run really was, aggregate over seeds, test
against a baseline, plot, report.

A run is a work dir of tools/train.py (or of mmdet's own tools/train.py). What it was is read from
the config its runner dumped into it (``<config name>.py``: detector, norm, images per GPU, dataset,
schedule, seed), falling back to ``coco_metrics.json`` and ``sweep_run.json`` where there is no
dump; never from folder or file names. Its results:
- ``coco_metrics.json`` (the report of tools/train.py or tools/test.py); without it (a run of
  mmdet's tools/train.py), the last validation in the run's scalars log, marked as such;
- ``sweep_run.json`` (tools/sweep.py): the run's status, so crashed and diverged runs, which have
  no metrics, still appear;
- ``*/vis_data/scalars.json`` (MMEngine's log of every logged iteration): loss and LR curves; a
  non-finite (or null) loss there marks the run as diverged.

Runs are grouped by what they were: (detector, dataset, schedule, norm, images per GPU). Two
finished runs of one group with the same seed are duplicates: the newest result counts and the
others are listed. Folders that look like runs (a log, a checkpoint, a dumped config) but hold no
result are listed as skipped; nothing is dropped silently.

Statistics per group: mean and sample standard deviation of AP, AP50 and AP75 over seeds (a
standard deviation and error bars only with >= 2 seeds). Significance as in Revisiting BN: a
one-sided paired t-test (``scipy.stats.ttest_rel``, H1: the norm's AP is higher) of each group
against the same group with the baseline norm, pairs being their runs of the same seed; p-values
where at least two pairs exist. Diverged runs are listed and counted, not averaged in.
"""
import glob
import json
import math
import os
import os.path as osp
import textwrap
from collections import defaultdict

from .errors import DataNotFoundError
from .report import JSON_NAME, describe_schedule, detector_name, schedule_text

RUN_INFO = 'sweep_run.json'
TASKS = ('bbox', 'segm')
APS = (('AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'))  # column, metric key suffix
SETTING = ('detector', 'dataset', 'schedule')  # a group is a setting x norm x images per GPU


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_scalars(work_dir: str) -> list:
    """Every row MMEngine logged for a run (a resumed run: all its log folders)."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))  # older logs hold NaN, which json accepts
                except json.JSONDecodeError:
                    continue
    return rows


def _finite(v) -> bool:
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
    schedule, seed."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    data = cfg.get('normdet_data') or {}
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    while 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
        dataset = dataset['dataset']
    return dict(detector=detector_name(cfg.model), norm=cfg.get('norm') or _norm_type(cfg.model),
                batch=(cfg.get('train_dataloader') or {}).get('batch_size'),
                dataset=data.get('root') or dataset.get('data_root'),
                schedule=schedule_text(describe_schedule(cfg)),
                seed=(cfg.get('randomness') or {}).get('seed'))


def _norm_type(node):
    """The first norm_cfg type in a model config (mmdet's own configs have no ``norm`` key)."""
    if isinstance(node, dict):
        if isinstance(node.get('norm_cfg'), dict):
            return node['norm_cfg'].get('type')
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        return next((t for t in map(_norm_type, node) if t), None)
    return None


def _looks_like_a_run(work_dir: str) -> bool:
    return any(glob.glob(osp.join(work_dir, pattern)) for pattern in (
        'last_checkpoint', '*.pth', '*.py', '*/vis_data/scalars.json', '*/*.log'))


def read_run(work_dir: str):
    """One run's description; None when the folder holds no run. A run without any result has
    ``status='skipped'`` and a ``reason``."""
    info_path, report_path = osp.join(work_dir, RUN_INFO), osp.join(work_dir, JSON_NAME)
    info = read_json(info_path) if osp.isfile(info_path) else {}
    report = read_json(report_path) if osp.isfile(report_path) else None
    if not (info or report or _looks_like_a_run(work_dir)):
        return None
    what = dict(detector=info.get('detector'), norm=info.get('norm'), batch=info.get('batch'),
                dataset=info.get('data_root'), schedule=None, seed=info.get('seed'))
    if report is not None:
        schedule = report.get('schedule')
        what.update({k: v for k, v in dict(
            detector=report.get('detector') or report.get('model'), norm=report.get('norm'),
            batch=(report.get('batch') or {}).get('per_gpu'),
            dataset=(report.get('dataset') or {}).get('data_root'),
            schedule=schedule_text(schedule) if schedule else None,
            seed=report.get('seed')).items() if v is not None})
    run = dict(work_dir=work_dir, status=info.get('status'), notes=[])
    config = dumped_config(work_dir)
    if config:
        try:
            what.update({k: v for k, v in describe_config(config).items() if v is not None})
            run['config'] = config
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
    if any(not _finite(r['loss']) for r in run['curves']):
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
    sub-folder), skipped ones included."""
    runs, seen = [], set()
    for top in work_dirs:
        for d in [top] + sorted(p for p in glob.glob(osp.join(top, '*')) if osp.isdir(p)):
            d = osp.abspath(d)
            if d in seen:
                continue
            seen.add(d)
            run = read_run(d)
            if run is not None:
                runs.append(run)
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


def mean_std(values) -> tuple:
    n = len(values)
    if n == 0:
        return float('nan'), float('nan')
    m = sum(values) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else float('nan'))


def paired_t_test(a, b) -> tuple:
    """One-sided paired t-test of H1: mean(a - b) > 0 (scipy.stats.ttest_rel). Returns
    (t, p, n pairs); NaN with fewer than two pairs."""
    n = len(a)
    if n < 2:
        return float('nan'), float('nan'), n
    import warnings

    from scipy import stats
    with warnings.catch_warnings():  # identical differences: t = +-inf, p = 0 or 1, as it should
        warnings.simplefilter('ignore', RuntimeWarning)
        result = stats.ttest_rel(a, b, alternative='greater')
    return float(result.statistic), float(result.pvalue), n


def counted(run, task='bbox') -> bool:
    return (run['status'] == 'done' and 'duplicate_of' not in run
            and (run.get('metrics') or {}).get(f'{task}_mAP') is not None)


def aggregate(runs, task='bbox', baseline='BN') -> list:
    """Rows per group: AP, AP50, AP75 mean/std over the counted seeds, diverged and failed
    counts, and the paired t-test of AP against ``baseline`` in the same setting and batch."""
    groups = defaultdict(list)
    for r in runs:
        if r['status'] != 'skipped':
            groups[group_key(r)].append(r)

    def seeds_ap(rs, key='mAP'):
        return {r['seed']: r['metrics'][f'{task}_{key}'] for r in rs if counted(r, task)}
    rows = []
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        row = dict(zip(SETTING, key[:3]), norm=key[3], batch=key[4], task=task)
        done = seeds_ap(rs)
        row.update(n=len(done), seeds=sorted(done, key=str))
        row['mean'], row['std'] = mean_std(list(done.values()))
        for col, suffix in APS[1:]:
            row[col], row[f'{col}_std'] = mean_std(
                [v for v in seeds_ap(rs, suffix).values() if v is not None])
        base = seeds_ap(groups.get(key[:3] + (baseline, key[4]), []))
        seeds = sorted(set(done) & set(base), key=str)
        t, p, n = (paired_t_test([done[s] for s in seeds], [base[s] for s in seeds])
                   if key[3] != baseline else (float('nan'), float('nan'), 0))
        row.update(diverged=sum(r['status'] == 'diverged' for r in rs),
                   failed=sum(r['status'] not in ('done', 'diverged') for r in rs),
                   t=t, p=p, pairs=n)
        rows.append(row)
    return rows


def _fmt(v, pct=True, digits=1):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '-'
    return f'{100 * v:.{digits}f}' if pct else f'{v:.3g}'


def _mean_pm(mean, std) -> str:
    return _fmt(mean) + (f' ± {_fmt(std)}' if not math.isnan(std) else '')


def _settings(items) -> list:
    return sorted({tuple(i.get(k) for k in SETTING) for i in items},
                  key=lambda s: tuple(map(str, s)))


def _setting_label(setting, all_settings) -> str:
    """The detector alone, or with dataset and schedule where the runs differ in those."""
    det, dataset, schedule = setting
    if len(all_settings) == 1:
        return str(det)
    return f"{det}, {osp.basename(dataset or '?')}, {schedule or '?'}"


def _title(ax, text):
    ax.set_title(textwrap.fill(text, 42), fontsize=9)


def _legend(ax, **kwargs):
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, **kwargs)


def plot(runs, rows, out_dir: str, task='bbox') -> list:
    """The PNGs of the report; returns their file names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    files = []
    settings = _settings(r for r in rows if r['n'])  # settings with a result to draw
    norms = sorted({r['norm'] for r in rows})
    colours = dict(zip(norms, plt.cm.tab10.colors))
    cols = [('AP', 'mean', 'std')] + [(c, c, f'{c}_std') for c, _ in APS[1:]]

    def grid():
        fig, axes = plt.subplots(len(settings), len(cols), squeeze=False,
                                 figsize=(5 * len(cols), 3.6 * len(settings)))
        return fig, axes
    # AP, AP50, AP75 per norm and batch: bars (mean), error bars where >= 2 seeds
    fig, axes = grid()
    for axrow, setting in zip(axes, settings):
        rs = [r for r in rows if tuple(r[k] for k in SETTING) == setting and r['n']]
        batches = sorted({r['batch'] for r in rs})
        here = sorted({r['norm'] for r in rs})
        width = 0.8 / len(here)
        for ax, (col, mean, std) in zip(axrow, cols):
            for i, norm in enumerate(here):
                pts = [(j + i * width, p) for j, b in enumerate(batches)
                       for p in rs if (p['norm'], p['batch']) == (norm, b)]
                if not pts:
                    continue
                xs, ps = zip(*pts)
                ax.bar(xs, [100 * (p[mean] if not math.isnan(p[mean]) else 0) for p in ps],
                       width, color=colours[norm], label=norm)
                bars = [(x, p) for x, p in pts if p['n'] >= 2 and not math.isnan(p[std])]
                if bars:
                    ax.errorbar([x for x, _ in bars], [100 * p[mean] for _, p in bars],
                                yerr=[100 * p[std] for _, p in bars], fmt='none', ecolor='k',
                                capsize=2, lw=1)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(batches))],
                          [f'{b}/GPU' for b in batches])
            ax.set_ylabel(f'{col} (%)')
            _title(ax, f'{_setting_label(setting, settings)}: {task} {col}')
            _legend(ax, ncol=2)
    fig.text(0.5, 0.005, 'bars: mean over seeds; error bars: ± std where >= 2 seeds',
             ha='center', fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    files.append(_save(fig, out_dir, f'{task}_ap_by_norm.png'))
    # AP, AP50, AP75 vs images per GPU
    fig, axes = grid()
    for axrow, setting in zip(axes, settings):
        rs = [r for r in rows if tuple(r[k] for k in SETTING) == setting]
        batches = sorted({r['batch'] for r in rs})
        for ax, (col, mean, std) in zip(axrow, cols):
            for norm in norms:
                pts = sorted((r['batch'], r[mean], r[std] if r['n'] >= 2 else float('nan'))
                             for r in rs if r['norm'] == norm and not math.isnan(r[mean]))
                if not pts:
                    continue
                b, m, s = zip(*pts)
                ax.plot(b, [100 * v for v in m], marker='o', label=norm, color=colours[norm])
                err = [(x, y, e) for x, y, e in pts if not math.isnan(e)]
                if err:
                    ax.errorbar([x for x, _, _ in err], [100 * y for _, y, _ in err],
                                yerr=[100 * e for _, _, e in err], fmt='none',
                                ecolor=colours[norm], capsize=3)
            ax.set_xscale('log', base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel('images per GPU')
            ax.set_ylabel(f'{task} {col} (%)')
            _title(ax, f'{_setting_label(setting, settings)}: {col} vs images per GPU')
            _legend(ax)
    fig.tight_layout()
    files.append(_save(fig, out_dir, f'{task}_ap_vs_batch.png'))
    # loss and LR curves: one panel per setting and batch size, one line per run
    curve_runs = [r for r in runs if r['curves'] and 'duplicate_of' not in r]
    all_settings = _settings(curve_runs)
    panels = sorted({tuple(r.get(k) for k in SETTING) + (r['batch'],) for r in curve_runs},
                    key=lambda p: tuple(map(str, p)))
    for key, name in (('loss', 'loss_curves.png'), ('lr', 'lr_curves.png')):
        fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4),
                                 squeeze=False)
        for ax, panel in zip(axes[0], panels):
            labelled = set()
            for r in curve_runs:
                if tuple(r.get(k) for k in SETTING) + (r['batch'],) != panel \
                        or key not in r['curves'][0]:
                    continue
                points = [(c['iter'], c[key]) for c in r['curves'] if _finite(c.get(key))]
                if not points:
                    continue
                ax.plot(*zip(*points), color=colours.get(r['norm']), alpha=0.7, lw=1,
                        ls='-' if r['status'] == 'done' else ':',
                        label=None if r['norm'] in labelled else r['norm'])
                labelled.add(r['norm'])
            ax.set_xlabel('iteration')
            ax.set_ylabel(key)
            if key == 'loss':
                ax.set_yscale('log')
            _title(ax, f'{_setting_label(panel[:3], all_settings)}, {panel[3]}/GPU: training '
                       f'{key}' + (' (dotted: not finished)' if key == 'loss' else ''))
            _legend(ax)
        fig.tight_layout()
        files.append(_save(fig, out_dir, name))
    return files


def _save(fig, out_dir, name):
    import matplotlib.pyplot as plt
    fig.savefig(osp.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def _describe(r) -> str:
    return f"{r['detector']} {r['norm']} batch {r['batch']} seed {r['seed']} ({r['work_dir']})"


def markdown(runs, tables: dict, images: list, baseline: str) -> str:
    statuses = sorted({r['status'] for r in runs})
    dups = [r for r in runs if 'duplicate_of' in r]
    lines = ['# Normalization study', '',
             f'{len(runs)} folders: ' + ', '.join(f'{s} {sum(r["status"] == s for r in runs)}'
                                                  for s in statuses)
             + (f'; {len(dups)} duplicate(s) not counted' if dups else ''), '',
             'Runs are grouped by what their dumped config says they were (detector, dataset, '
             'schedule, norm, images per GPU); "±": sample std over seeds, shown with >= 2 seeds.',
             '']
    for task, rows in tables.items():
        lines += [f'## {task}: AP, AP50, AP75 (%), mean ± std over seeds; one-sided paired '
                  f't-test of AP vs {baseline}', '',
                  '| detector | dataset | schedule | norm | batch/GPU | seeds | AP | AP50 | AP75 | '
                  f'diverged | failed | p (AP > {baseline}) | pairs |', '|---' * 13 + '|']
        for r in rows:
            lines.append(
                f"| {r['detector']} | {osp.basename(r['dataset'] or '-')} | {r['schedule'] or '-'} "
                f"| {r['norm']} | {r['batch']} | {r['n']} | {_mean_pm(r['mean'], r['std'])} | "
                f"{_mean_pm(r['AP50'], r['AP50_std'])} | {_mean_pm(r['AP75'], r['AP75_std'])} | "
                f"{r['diverged']} | {r['failed']} | {_fmt(r['p'], pct=False)} | {r['pairs']} |")
        lines.append('')
    bad = [r for r in runs if r['status'] not in ('done', 'skipped')]
    lines += ['## Runs that did not finish', '']
    lines += [f"- {r['status']}: {_describe(r)}" for r in bad] or ['none']
    lines += ['', '## Duplicates (same group and seed; the newest result counts)', '']
    lines += [f"- {_describe(r)}: duplicate of {r['duplicate_of']}" for r in dups] or ['none']
    skipped = [r for r in runs if r['status'] == 'skipped']
    lines += ['', '## Skipped folders (no result)', '']
    lines += [f"- {r['work_dir']}: {r['reason']}" for r in skipped] or ['none']
    from_log = [r for r in runs if r.get('source', '').startswith('log')]
    if from_log:
        lines += ['', f'## Results read from the training log (no {JSON_NAME})', '']
        lines += [f'- {_describe(r)}' for r in from_log]
    notes = [(r['work_dir'], n) for r in runs for n in r['notes']]
    if notes:
        lines += ['', '## Notes', ''] + [f'- {d}: {n}' for d, n in notes]
    lines += ['', '## Plots', ''] + [f'![{i}]({i})' for i in images]
    return '\n'.join(lines) + '\n'


def write_study(work_dirs, out_dir: str, baseline: str = 'BN') -> str:
    """Collect, aggregate, plot and write ``out_dir/report.md`` (+ ``study.json``); returns the
    Markdown path."""
    from .io import atomic_write, strict_json
    runs = collect(work_dirs)
    if not any(r['status'] != 'skipped' for r in runs):
        raise DataNotFoundError(
            f'no run found in {list(work_dirs)} (a run folder holds {JSON_NAME}, {RUN_INFO} or '
            'a training log with a validation)'
            + ''.join(f'; skipped {r["work_dir"]}: {r["reason"]}' for r in runs))
    mark_duplicates(runs)
    os.makedirs(out_dir, exist_ok=True)
    tables = {task: aggregate(runs, task, baseline) for task in TASKS
              if any(counted(r, task) for r in runs)}
    images = plot(runs, tables['bbox'], out_dir) if 'bbox' in tables else []
    md_path = osp.join(out_dir, 'report.md')
    atomic_write(md_path, markdown(runs, tables, images, baseline))
    slim = [{k: v for k, v in r.items() if k != 'curves'} for r in runs]
    atomic_write(osp.join(out_dir, 'study.json'),
                 json.dumps(strict_json(dict(runs=slim, tables=tables)), indent=2, default=str))
    return md_path
