"""Compare runs: collect work dirs, aggregate over seeds, test against a baseline, plot, report.

A run is a work dir of tools/train.py. What is read from it:
- ``coco_metrics.json`` (the evaluation report): detector config, norm, batch, seed, metrics;
- ``sweep_run.json`` (written by tools/sweep.py): the same keys and the run's status, so crashed
  and diverged runs, which have no metrics, still appear;
- ``*/vis_data/scalars.json`` (MMEngine's log of every logged iteration): loss and LR curves; a
  NaN or infinite loss there marks the run as diverged.

Statistics, per (detector, norm, per-GPU batch): mean and sample standard deviation of AP over
seeds. Significance as in Revisiting BN: a one-sided paired t-test of norm vs baseline, pairs
being runs of the same detector, batch and seed (H1: the norm's AP is higher); p-values are
reported where at least two pairs exist. Diverged runs are listed and counted, not averaged in.
"""
import glob
import json
import math
import os
import os.path as osp
from collections import defaultdict

from .report import JSON_NAME

RUN_INFO = 'sweep_run.json'
TASK_KEYS = (('bbox', 'bbox_mAP'), ('segm', 'segm_mAP'))


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_curves(work_dir: str) -> list:
    """Every logged training iteration of a run (resumed runs: all their log folders)."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)  # NaN/Infinity are accepted by json
                except json.JSONDecodeError:
                    continue
                if 'loss' in row and 'iter' in row:
                    rows.append(row)
    return sorted(rows, key=lambda r: r['iter'])


def read_run(work_dir: str) -> dict:
    """One run's description; None if the folder holds neither metrics nor sweep info."""
    info = read_json(osp.join(work_dir, RUN_INFO)) if osp.isfile(osp.join(work_dir, RUN_INFO)) else {}
    report = read_json(osp.join(work_dir, JSON_NAME)) if osp.isfile(osp.join(work_dir, JSON_NAME)) else None
    if report is None and not info:
        return None
    run = dict(work_dir=work_dir, detector=info.get('detector'), norm=info.get('norm'),
               batch=info.get('batch'), seed=info.get('seed'), status=info.get('status', 'done'))
    if report is not None:
        run.update(detector=run['detector'] or osp.basename(report['config'] or '')[:-3].rsplit('_', 1)[0],
                   norm=report['norm'], batch=report['batch']['per_gpu'],
                   seed=report.get('seed') if run['seed'] is None else run['seed'],
                   metrics=report['metrics'])
    curves = read_curves(work_dir)
    run['curves'] = curves
    if any(not math.isfinite(float(r['loss'])) for r in curves):
        run['status'] = 'diverged'
    return run


def collect(work_dirs) -> list:
    """Runs found in or under the given folders (a sweep folder holds one run per sub-folder)."""
    runs, seen = [], set()
    for top in work_dirs:
        for d in [top] + sorted(p for p in glob.glob(osp.join(top, '*')) if osp.isdir(p)):
            d = osp.abspath(d)
            if d in seen:
                continue
            run = read_run(d)
            if run is not None:
                seen.add(d)
                runs.append(run)
    return runs


def mean_std(values) -> tuple:
    n = len(values)
    if n == 0:
        return float('nan'), float('nan')
    m = sum(values) / n
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else float('nan'))


def paired_t_test(a, b) -> tuple:
    """One-sided paired t-test of H1: mean(a - b) > 0. Returns (t, p, n pairs)."""
    from scipy import stats
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    if n < 2:
        return float('nan'), float('nan'), n
    m, s = mean_std(d)
    if s == 0:
        return (math.inf if m > 0 else -math.inf if m < 0 else float('nan')), (
            0.0 if m > 0 else 1.0 if m < 0 else float('nan')), n
    t = m / (s / math.sqrt(n))
    return t, float(stats.t.sf(t, n - 1)), n


def ap(run, task='bbox'):
    return (run.get('metrics') or {}).get(f'{task}_mAP')


def aggregate(runs, task='bbox', baseline='BN') -> list:
    """Rows per (detector, norm, batch): AP mean/std over finished seeds, diverged count, and the
    paired t-test against ``baseline`` at the same detector, batch and seed."""
    groups = defaultdict(list)
    for r in runs:
        groups[(r['detector'], r['norm'], r['batch'])].append(r)
    rows = []
    for (det, norm, batch), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        done = {r['seed']: ap(r, task) for r in rs if r['status'] == 'done' and ap(r, task) is not None}
        mean, std = mean_std(list(done.values()))
        base = {r['seed']: ap(r, task) for r in groups.get((det, baseline, batch), [])
                if r['status'] == 'done' and ap(r, task) is not None}
        seeds = sorted(set(done) & set(base), key=str)
        t, p, n = (paired_t_test([done[s] for s in seeds], [base[s] for s in seeds])
                   if norm != baseline else (float('nan'), float('nan'), 0))
        rows.append(dict(detector=det, norm=norm, batch=batch, task=task, n=len(done),
                         mean=mean, std=std, diverged=sum(r['status'] == 'diverged' for r in rs),
                         failed=sum(r['status'] not in ('done', 'diverged') for r in rs),
                         t=t, p=p, pairs=n))
    return rows


def _fmt(v, pct=True, digits=1):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '-'
    return f'{100 * v:.{digits}f}' if pct else f'{v:.3g}'


def plot(runs, rows, out_dir: str, task='bbox') -> list:
    """The PNGs of the report; returns their file names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    files = []
    dets = sorted({r['detector'] for r in rows})
    norms = sorted({r['norm'] for r in rows})
    colours = dict(zip(norms, plt.cm.tab10.colors))
    # AP per norm and batch (bars, mean +- std)
    fig, axes = plt.subplots(1, len(dets), figsize=(6 * len(dets), 4), squeeze=False)
    for ax, det in zip(axes[0], dets):
        batches = sorted({r['batch'] for r in rows if r['detector'] == det})
        width = 0.8 / max(len(norms), 1)
        for i, norm in enumerate(norms):
            pts = [next((r for r in rows if (r['detector'], r['norm'], r['batch']) == (det, norm, b)), None)
                   for b in batches]
            xs = [j + i * width for j in range(len(batches))]
            ax.bar(xs, [100 * (p['mean'] if p and not math.isnan(p['mean']) else 0) for p in pts],
                   width, yerr=[100 * (p['std'] if p and not math.isnan(p['std']) else 0) for p in pts],
                   color=colours[norm], label=norm, capsize=2)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(batches))],
                      [f'{b}/GPU' for b in batches])
        ax.set_title(f'{det}: {task} AP (mean ± std over seeds)')
        ax.set_ylabel('AP (%)')
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    files.append(_save(fig, out_dir, f'{task}_ap_by_norm.png'))
    # AP vs per-GPU batch
    fig, axes = plt.subplots(1, len(dets), figsize=(6 * len(dets), 4), squeeze=False)
    for ax, det in zip(axes[0], dets):
        for norm in norms:
            pts = sorted((r['batch'], r['mean'], r['std']) for r in rows
                         if r['detector'] == det and r['norm'] == norm and not math.isnan(r['mean']))
            if pts:
                b, m, s = zip(*pts)
                ax.errorbar(b, [100 * v for v in m],
                            yerr=[100 * (v if not math.isnan(v) else 0) for v in s],
                            marker='o', capsize=3, label=norm, color=colours[norm])
        ax.set_xscale('log', base=2)
        batches = sorted({r['batch'] for r in rows if r['detector'] == det})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel('images per GPU')
        ax.set_ylabel(f'{task} AP (%)')
        ax.set_title(f'{det}: AP vs batch per GPU')
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(_save(fig, out_dir, f'{task}_ap_vs_batch.png'))
    # loss and LR curves: one panel per detector and batch size, one line per run
    panels = sorted({(r['detector'], r['batch']) for r in runs if r['curves']},
                    key=lambda p: (str(p[0]), p[1] or 0))
    for key, name in (('loss', 'loss_curves.png'), ('lr', 'lr_curves.png')):
        fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4),
                                 squeeze=False)
        for ax, (det, batch) in zip(axes[0], panels):
            for r in runs:
                if (r['detector'], r['batch']) != (det, batch) or not r['curves'] \
                        or key not in r['curves'][0]:
                    continue
                first_seed = r['seed'] == min(x['seed'] or 0 for x in runs if x['norm'] == r['norm'])
                ax.plot([c['iter'] for c in r['curves']], [c[key] for c in r['curves']],
                        color=colours.get(r['norm']), alpha=0.7, lw=1,
                        ls='-' if r['status'] == 'done' else ':',
                        label=r['norm'] if first_seed else None)
            ax.set_xlabel('iteration')
            ax.set_ylabel(key)
            if key == 'loss':
                ax.set_yscale('log')
            ax.set_title(f'{det}, {batch}/GPU: training {key}' + (' (dotted: not finished)'
                                                                    if key == 'loss' else ''))
            ax.legend(fontsize=8)
        fig.tight_layout()
        files.append(_save(fig, out_dir, name))
    return files


def _save(fig, out_dir, name):
    import matplotlib.pyplot as plt
    fig.savefig(osp.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def markdown(runs, tables: dict, images: list, baseline: str) -> str:
    lines = ['# Normalization study', '',
             f'{len(runs)} runs: ' + ', '.join(f'{s} {sum(r["status"] == s for r in runs)}'
                                               for s in sorted({r['status'] for r in runs})), '']
    for task, rows in tables.items():
        lines += [f'## {task} AP (%), mean ± std over seeds; one-sided paired t-test vs {baseline}', '',
                  '| detector | norm | batch/GPU | seeds | AP | ± std | diverged | failed | '
                  f'p (> {baseline}) | pairs |', '|---' * 10 + '|']
        for r in rows:
            lines.append(f"| {r['detector']} | {r['norm']} | {r['batch']} | {r['n']} | "
                         f"{_fmt(r['mean'])} | {_fmt(r['std'])} | {r['diverged']} | {r['failed']} | "
                         f"{_fmt(r['p'], pct=False)} | {r['pairs']} |")
        lines.append('')
    bad = [r for r in runs if r['status'] != 'done']
    lines += ['## Runs that did not finish', '']
    lines += ([f"- {r['status']}: {r['detector']} {r['norm']} batch {r['batch']} seed {r['seed']} "
               f"({r['work_dir']})" for r in bad] or ['none'])
    lines += ['', '## Plots', ''] + [f'![{i}]({i})' for i in images]
    return '\n'.join(lines) + '\n'


def write_study(work_dirs, out_dir: str, baseline: str = 'BN') -> str:
    """Collect, aggregate, plot and write ``out_dir/report.md`` (+ ``study.json``); returns the
    Markdown path."""
    from .io import atomic_write
    runs = collect(work_dirs)
    if not runs:
        raise FileNotFoundError(f'no run found in {list(work_dirs)} (a run folder holds '
                                f'{JSON_NAME} or {RUN_INFO})')
    os.makedirs(out_dir, exist_ok=True)
    tables = {}
    for task, key in TASK_KEYS:
        if any((r.get('metrics') or {}).get(key) is not None for r in runs):
            tables[task] = aggregate(runs, task, baseline)
    images = plot(runs, tables.get('bbox', []), out_dir) if tables else []
    md_path = osp.join(out_dir, 'report.md')
    atomic_write(md_path, markdown(runs, tables, images, baseline))
    slim = [{k: v for k, v in r.items() if k != 'curves'} for r in runs]
    atomic_write(osp.join(out_dir, 'study.json'),
                 json.dumps(dict(runs=slim, tables=tables), indent=2, default=str))
    return md_path
