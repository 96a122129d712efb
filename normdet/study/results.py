"""docs/results.md: the verdict on each of the papers' claims (normdet.study.claims) from the
runs of the study's plan (normdet.study.plan), with the numbers behind each verdict, every group
of runs, and the parts of the plan; each part's own report and plots (normdet.study.report) go
to ``study/<part>/`` next to it."""
import math
import os
import os.path as osp
import shlex

from normdet.utils.errors import DataNotFoundError
from normdet.utils.io import atomic_write

from .advice import CURVE_PNG, advice, advice_markdown, curve_points, plot_curve
from .claims import collect_parts, overall, rule_claims, runs_by, verdict_rules
from .report import mean_pm, write_study
from .runs import ap, left_plateau
from .stats import mean_std


def _ms(values) -> str:
    """AP values in percent as 'mean ± std' (the std where there are two or more)."""
    return mean_pm(*mean_std(values))


def _fmt_p(p) -> str:
    return '-' if isinstance(p, float) and math.isnan(p) else f'{p:.3f}'


def _d(c) -> str:
    if c['n'] > 1:
        return f'{100 * c["mean"]:+.2f} ± {100 * c["std"]:.2f}'
    return f'{100 * c["mean"]:+.2f}' if c['n'] else '-'


def results_markdown(plan, parts_runs, results, argv, extra: str = '') -> str:
    """The Markdown of docs/results.md; ``argv``: the tools/study.py options that regenerate it,
    ``extra``: Markdown appended (the notes written after the runs)."""
    cmd = 'python tools/study.py ' + ' '.join(shlex.quote(a) for a in argv)
    table = runs_by(parts_runs)
    figure = f'study/{CURVE_PNG}' if curve_points(table) else None  # write_results draws it
    lines = ['# Results: the papers\' claims on the embedded benchmark', '',
             *advice_markdown(advice(table), figure), '',
             'Regenerate everything (resumable: it trains only the runs still missing, then '
             'writes this file and `docs/study/`):', '', '```bash',
             f'bash tools/env.sh {cmd.strip()}', '```', '',
             *_completeness(plan, parts_runs), '',
             'Rules (`normdet/study/claims.py`; all but the last were fixed before the runs):', '',
             *verdict_rules(), '',
             '## Verdicts', '',
             '| claim | verdict |', '|---|---|']
    for res in results:
        lines.append(f"| {res['text']} | **{overall(res['rows'])}** |")
    for res in results:
        two = any('cmp_b' in r for r in res['rows'])  # the papers' protocol: both variants
        lines += ['', f"## {res['text']}", '',
                  '| comparison | AP (%) claimed better, mean ± std | other | d (AP) mean ± std '
                  '| p(d > 0) | p(d < 0) | seeds | ' +
                  ('second variant: claimed better | other | d | ' if two else '') +
                  'verdict | why |', '|---' * (12 if two else 9) + '|']
        for r in res['rows']:
            c = r['cmp']
            task = '' if r['task'] == 'bbox' else ' (mask)'
            b = r.get('cmp_b')
            second = f"{_ms(b['a'])} | {_ms(b['b'])} | {_d(b)} | " if b else ''
            lines.append(f"| {r['label']}{task} | {_ms(c['a'])} | {_ms(c['b'])} | {_d(c)} | "
                         f"{_fmt_p(c['p_greater'])} | {_fmt_p(c['p_less'])} | {c['n']} | "
                         f"{second}**{r['verdict'][0]}** | {r['verdict'][1]} |")
    lines += ['', '## Every group', '',
              'SSD\'s plateau: the first logged iteration of each finished run whose '
              'classification loss is below the plateau (ln(4 C) + 3 ln(4/3), 3.636 for the '
              "benchmark's 4 classes) by 0.02, fewest to most, and how many runs never left it "
              '(`docs/study/recipe.md`).', '',
              '| part | norm | batch/GPU | runs | AP (%) | AP50 | AP75 | leaves SSD\'s plateau '
              'at iteration | not finished |', '|---' * 9 + '|']
    for (part, norm, batch), g in sorted(table.items(), key=lambda kv: tuple(map(str, kv[0]))):
        aps = [[v for v in (ap(r, 'bbox', key) for r in g.values()) if v is not None]
               for key in ('mAP', 'mAP_50', 'mAP_75')]
        done = sum(r['status'] == 'done' for r in g.values())
        lines.append(f'| {part} | {norm} | {batch} | {len(g)} | '
                     + ' | '.join(map(_ms, aps))
                     + f' | {_plateau(g.values())} | {len(g) - done} |')
    lines += ['', '## The parts of the study', '']
    for part in plan:
        n = len(parts_runs.get(part.name) or [])
        opts = f"; options `{' '.join(part.options)}`" if part.options else ''
        where = (f'Report and plots: [study/{part.name}/report.md](study/{part.name}/report.md)'
                 if n else 'Not run.')
        procs = f' in each of {part.gpus} processes' if part.gpus > 1 else ''
        lines.append(f'- **{part.name}** ({n} runs found{", optional" if part.optional else ""}):'
                     f' {part.what}; `{part.detector}`, norms {", ".join(part.norms)}, batch '
                     f'{part.batch}{procs}, seeds {part.seeds}, {part.epochs} epochs{opts}. '
                     f'{where}')
    return '\n'.join(lines) + '\n' + ('\n' + extra if extra else '')


def _plateau(runs) -> str:
    """When a group's finished SSD runs left the plateau: '176-240', '176-240; 1 never', '-'."""
    left = [left_plateau(r) for r in runs if r['status'] == 'done']
    iters = sorted(i for i in left if isinstance(i, int))
    never = left.count('never')
    if not iters and not never:
        return '-'
    span = (f'{iters[0]}' if iters[0] == iters[-1] else f'{iters[0]}-{iters[-1]}') if iters else ''
    return '; '.join(x for x in (span, f'{never} never' if never else '') if x)


def _completeness(plan, parts_runs) -> list:
    """How much of the plan the results stand on: planned and finished runs per part."""
    rows, planned, finished = [], [0, 0], [0, 0]  # [the plan's, the optional parts']
    for part in plan:
        done = sum(r['status'] == 'done' for r in parts_runs.get(part.name) or [])
        planned[part.optional] += len(part.runs())
        finished[part.optional] += done
        rows.append(f'| {part.name}{" (optional)" if part.optional else ""} | '
                    f'{len(part.runs())} | {done} |')
    head = (f'**{finished[0]} of the {planned[0]} runs of the plan have finished.**' +
            (' The comparisons of the missing runs are inconclusive (no paired seeds) until '
             'the command above trains them (it trains only what is missing).'
             if finished[0] < planned[0] else ''))
    if planned[1]:  # the papers' protocol and the rest, trained with --parts
        head += (f' **Of the optional parts, {finished[1]} of {planned[1]} runs have '
                 'finished**: `--parts NAME ...` trains them (shell patterns: '
                 "`--parts 'papers_ssdlite*'`).")
    runs = [r for rs in parts_runs.values() for r in rs or []]
    wall = sum(r.get('wall_s') or 0 for r in runs)
    cpu = [r['cpu_s'] for r in runs if r.get('cpu_s')]
    resumed = sum(bool(r.get('resumed')) for r in runs)
    cost = (f'Cost of the {len(runs)} runs found: {wall / 3600:.1f} h of wall time (each run\'s '
            'own, on the 2-core machine, often two at a time)' +
            (f'; CPU time (user + system of all its processes) recorded for {len(cpu)} of them: '
             f'{sum(cpu) / 3600:.1f} h' if cpu else '') +
            (f'; {resumed} of them resumed after an interruption, and '
             f'{"counts only its" if resumed == 1 else "count only their"} last attempt.'
             if resumed else '.'))
    return [head, '', cost, '', '| part | planned runs | finished |', '|---|---|---|', *rows]


def write_results(plan, work_dir: str, out: str, argv=(), extra: str = '') -> str:
    """Rule on the claims from the runs of ``plan`` in ``work_dir/<part>/`` and write ``out``
    (Markdown), plus each part's report and plots into ``<out's folder>/study/<part>/``."""
    if not osp.isdir(work_dir):
        raise DataNotFoundError(f'{work_dir} does not exist: no runs to write results from '
                                f'({out} is left as it is); name the study\'s work dir with '
                                '--work-dir')
    parts_runs = collect_parts(plan, work_dir)
    if not any(parts_runs.values()):
        raise DataNotFoundError(f'no finished run of the plan under {work_dir} (a folder per part: '
                                f'{", ".join(p.name for p in plan)}); {out} is left as it is')
    results = rule_claims(parts_runs)
    for part in plan:
        if parts_runs.get(part.name):
            write_study([osp.join(work_dir, part.name)],
                        osp.join(osp.dirname(out), 'study', part.name))
    os.makedirs(osp.join(osp.dirname(osp.abspath(out)), 'study'), exist_ok=True)
    plot_curve(runs_by(parts_runs), osp.join(osp.dirname(osp.abspath(out)), 'study'))
    atomic_write(out, results_markdown(plan, parts_runs, results, list(argv), extra))
    return out
