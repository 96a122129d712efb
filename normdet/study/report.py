"""The report of one set of runs (tools/report.py, tools/sweep.py, and each part of the study):
``report.md``, ``study.json`` and PNG plots.

Runs (normdet.study.runs) are grouped by what they were: (detector, dataset, schedule, norm,
images per GPU). Statistics per group: mean and sample standard deviation of AP, AP50 and AP75
over seeds (a standard deviation and error bars only with >= 2 seeds). Significance as in
Revisiting BN: a one-sided paired t-test (H1: the norm's AP is higher) of each group against the
same group with the baseline norm, pairs being their runs of the same seed; p-values where at
least two pairs exist (normdet.study.stats). Diverged runs are listed and counted, not averaged
in.
"""
import json
import math
import os
import os.path as osp
import textwrap
from collections import defaultdict

from normdet.cli.report import JSON_NAME
from normdet.utils.coco_metrics import TASKS
from normdet.utils.errors import DataNotFoundError
from normdet.utils.io import atomic_write, strict_json

from .runs import RUN_INFO, SETTING, ap, collect, finite, group_key, mark_duplicates
from .stats import mean_std, paired_t_test

APS = (('AP', 'mAP'), ('AP50', 'mAP_50'), ('AP75', 'mAP_75'))  # column, metric key suffix


def aggregate(runs, task='bbox', baseline='BN') -> list:
    """Rows per group: AP, AP50, AP75 mean/std over the counted seeds, diverged and failed
    counts, and the paired t-test of AP against ``baseline`` in the same setting and batch."""
    groups = defaultdict(list)
    for r in runs:
        if r['status'] != 'skipped':
            groups[group_key(r)].append(r)

    def seeds_ap(rs, key='mAP'):
        return {r['seed']: ap(r, task, key) for r in rs if ap(r, task) is not None}
    rows = []
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        k = len(SETTING)
        row = dict(zip(SETTING, key[:k]), norm=key[k], batch=key[k + 1], task=task)
        done = seeds_ap(rs)
        row.update(n=len(done), seeds=sorted(done, key=str))
        row['mean'], row['std'] = mean_std(list(done.values()))
        for col, suffix in APS[1:]:
            row[col], row[f'{col}_std'] = mean_std(
                [v for v in seeds_ap(rs, suffix).values() if v is not None])
        base = seeds_ap(groups.get(key[:k] + (baseline, key[k + 1]), []))
        seeds = sorted(set(done) & set(base), key=str)
        t, p, n = (paired_t_test([done[s] for s in seeds], [base[s] for s in seeds])
                   if key[k] != baseline else (float('nan'), float('nan'), 0))
        row.update(diverged=sum(r['status'] == 'diverged' for r in rs),
                   failed=sum(r['status'] not in ('done', 'diverged') for r in rs),
                   t=t, p=p, pairs=n)
        rows.append(row)
    return rows


def _fmt(v, pct=True, digits=1):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '-'
    return f'{100 * v:.{digits}f}' if pct else f'{v:.3g}'


def mean_pm(mean, std) -> str:
    """A mean (and std, unless NaN) in percent: '33.0 ± 1.7', '-' for no value."""
    return _fmt(mean) + (f' ± {_fmt(std)}' if not math.isnan(std) else '')


def _settings(items) -> list:
    return sorted({tuple(i.get(k) for k in SETTING) for i in items},
                  key=lambda s: tuple(map(str, s)))


def _setting_label(setting, all_settings) -> str:
    """The detector alone, or with dataset, schedule and processes where the runs differ."""
    det, dataset, schedule, gpus = setting
    if len(all_settings) == 1:
        return str(det)
    return (f"{det}, {osp.basename(dataset or '?')}, {schedule or '?'}"
            + (f', {gpus} processes' if gpus and gpus > 1 else ''))


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
                points = [(c['iter'], c[key]) for c in r['curves'] if finite(c.get(key))]
                if not points:
                    continue
                ax.plot(*zip(*points), color=colours.get(r['norm']), alpha=0.7, lw=1,
                        ls='-' if r['status'] == 'done' else ':',
                        marker='o' if len(points) < 20 else None, ms=3,  # a short run: its points
                        label=None if r['norm'] in labelled else r['norm'])
                labelled.add(r['norm'])
            ax.set_xlabel('iteration')
            ax.set_ylabel(key)
            if key == 'loss':
                ax.set_yscale('log')
            _title(ax, f'{_setting_label(panel[:-1], all_settings)}, {panel[-1]}/GPU: training '
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


def study_markdown(runs, tables: dict, images: list, baseline: str) -> str:
    statuses = sorted({r['status'] for r in runs})
    dups = [r for r in runs if 'duplicate_of' in r]
    lines = ['# Normalization study', '',
             f'{len(runs)} folders: ' + ', '.join(f'{s} {sum(r["status"] == s for r in runs)}'
                                                  for s in statuses)
             + (f'; {len(dups)} duplicate(s) not counted' if dups else ''), '',
             'Runs are grouped by what their reports say they were (detector, dataset, '
             'schedule, norm, images per GPU); "±": sample std over seeds, shown with >= 2 '
             'seeds.',
             '']
    for task, rows in tables.items():
        lines += [f'## {task}: AP, AP50, AP75 (%), mean ± std over seeds; one-sided paired '
                  f't-test of AP vs {baseline}', '',
                  '| detector | dataset | schedule | norm | batch/GPU | seeds | AP | AP50 | AP75 '
                  f'| diverged | failed | p (AP > {baseline}) | pairs |', '|---' * 13 + '|']
        for r in rows:
            lines.append(
                f"| {r['detector']} | {osp.basename(r['dataset'] or '-')} | "
                f"{r['schedule'] or '-'} | {r['norm']} | {r['batch']} | {r['n']} | "
                f"{mean_pm(r['mean'], r['std'])} | "
                f"{mean_pm(r['AP50'], r['AP50_std'])} | {mean_pm(r['AP75'], r['AP75_std'])} | "
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
    runs = collect(work_dirs)
    if not any(r['status'] != 'skipped' for r in runs):
        raise DataNotFoundError(
            f'no run found in {list(work_dirs)} (a run folder holds {JSON_NAME}, {RUN_INFO} or '
            'a training log with a validation)'
            + ''.join(f'; skipped {r["work_dir"]}: {r["reason"]}' for r in runs))
    mark_duplicates(runs)
    os.makedirs(out_dir, exist_ok=True)
    tables = {task: aggregate(runs, task, baseline) for task in TASKS
              if any(ap(r, task) is not None for r in runs)}
    images = plot(runs, tables['bbox'], out_dir) if 'bbox' in tables else []
    md_path = osp.join(out_dir, 'report.md')
    atomic_write(md_path, study_markdown(runs, tables, images, baseline))
    slim = [{k: v for k, v in r.items() if k != 'curves'} for r in runs]
    atomic_write(osp.join(out_dir, 'study.json'),
                 json.dumps(strict_json(dict(runs=slim, tables=tables)), indent=2, default=str))
    return md_path
