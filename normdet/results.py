"""The papers' claims, ruled on from the study's runs (tools/study.py): docs/results.md.

Each claim is a comparison of two groups of runs that differ in one thing (the norm, or the
batch, or the LR), paired by seed (same seed: same initialisation and data order). Per pair the
difference d = AP(claimed better) - AP(other); over the seeds, the mean and std of d and the
one-sided paired t-tests (``scipy.stats.ttest_rel``) in both directions. The verdict rules are
fixed before looking at the numbers:

- "A beats B": **reproduced** when p(d > 0) < 0.05; **not reproduced** when the mean d <= 0 (the
  measured effect has the wrong sign; "significantly" when p(d < 0) < 0.05); **inconclusive**
  when d > 0 on average but p >= 0.05.
- "A matches B" (equivalence within +-1 AP): **reproduced** when both one-sided tests of the
  margin (TOST) give p < 0.05; **not reproduced** when d is significantly below -1 AP (or above
  +1); **inconclusive** otherwise (3 seeds rarely prove equivalence).
- "A does not train normally": **reproduced** when A diverged or failed in a run where the
  reference did not, or A is significantly worse than the reference (p < 0.05) by more than
  3 AP; **not reproduced** when every run of A finished and A is not significantly worse than
  the reference by that much; the rest is **inconclusive**.
- Floor: a "beats" or "matches" comparison in which both sides average below 2 AP is
  **inconclusive** (neither detector has started to detect; the difference is noise). This
  rule was added after the first runs of the study showed GN and FRN near 0 AP at the budgeted
  schedule; it only turns verdicts into "inconclusive".
"""
import math
import os
import os.path as osp
import shlex

from .study import collect, mark_duplicates

MARGIN = 0.01      # "matches": within 1 AP
COLLAPSE = 0.03    # "does not train normally": worse by more than 3 AP
ALPHA = 0.05


def _ttest(d, alternative, popmean=0.0):
    from scipy import stats
    if len(d) < 2:
        return float('nan')
    if all(abs(x - d[0]) < 1e-12 for x in d):  # no spread: the sign decides
        diff = d[0] - popmean
        return 0.0 if (diff > 0 if alternative == 'greater' else diff < 0) else 1.0
    return float(stats.ttest_1samp(d, popmean, alternative=alternative).pvalue)


def runs_by(parts_runs):
    """{(part, norm, batch): {seed: run}} for the counted runs (latest of duplicates)."""
    table = {}
    for part, runs in parts_runs.items():
        for r in runs:
            if 'duplicate_of' in r:
                continue
            table.setdefault((part, r['norm'], r['batch']), {})[r['seed']] = r
    return table


def ap(run, task='bbox'):
    m = run.get('metrics') or {}
    return m.get(f'{task}_mAP') if run['status'] == 'done' else None


def compare(a: dict, b: dict, task='bbox') -> dict:
    """Paired comparison of two {seed: run} groups."""
    seeds = sorted(s for s in set(a) & set(b)
                   if ap(a[s], task) is not None and ap(b[s], task) is not None)
    d = [ap(a[s], task) - ap(b[s], task) for s in seeds]
    n = len(d)
    mean = sum(d) / n if n else float('nan')
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else float('nan')
    aps = lambda g: [ap(g[s], task) for s in sorted(g) if ap(g[s], task) is not None]  # noqa
    return dict(seeds=seeds, n=n, d=d, mean=mean, std=std,
                p_greater=_ttest(d, 'greater'), p_less=_ttest(d, 'less'),
                a=aps(a), b=aps(b),
                a_bad=sum(r['status'] != 'done' for r in a.values()),
                b_bad=sum(r['status'] != 'done' for r in b.values()))


FLOOR = 0.02  # both sides below 2 AP: no verdict


def verdict(kind: str, c: dict):
    if c['n'] < 2 and kind != 'fails':
        return 'inconclusive', f'{c["n"]} paired seed(s): too few for a test'
    if kind != 'fails' and c['a'] and c['b'] and max(sum(c['a']) / len(c['a']),
                                                     sum(c['b']) / len(c['b'])) < FLOOR:
        return 'inconclusive', 'both below 2 AP: neither has started to detect'
    if kind == 'beats':
        if c['p_greater'] < ALPHA:
            return 'reproduced', f'p = {c["p_greater"]:.3f} < {ALPHA}'
        if c['mean'] <= 0:
            sig = ' (significantly: p = %.3f)' % c['p_less'] if c['p_less'] < ALPHA else ''
            return 'not reproduced', f'the measured difference is {100 * c["mean"]:+.1f} AP{sig}'
        return 'inconclusive', (f'{100 * c["mean"]:+.1f} AP on average, p = '
                                f'{c["p_greater"]:.3f} >= {ALPHA}')
    if kind == 'matches':
        lo = _ttest(c['d'], 'greater', -MARGIN)
        hi = _ttest(c['d'], 'less', MARGIN)
        if max(lo, hi) < ALPHA:
            return 'reproduced', f'within +-{100 * MARGIN:.0f} AP (TOST p = {max(lo, hi):.3f})'
        if _ttest(c['d'], 'less', -MARGIN) < ALPHA or _ttest(c['d'], 'greater', MARGIN) < ALPHA:
            return 'not reproduced', (f'{100 * c["mean"]:+.1f} AP: significantly outside '
                                      f'+-{100 * MARGIN:.0f} AP')
        return 'inconclusive', (f'{100 * c["mean"]:+.1f} AP; equivalence within '
                                f'+-{100 * MARGIN:.0f} AP not shown (TOST p = {max(lo, hi):.3f})')
    if kind == 'fails':  # a = the norm claimed not to train, b = the reference
        if c['a_bad'] > c['b_bad']:
            return 'reproduced', f'{c["a_bad"]} run(s) diverged or failed'
        worse = _ttest(c['d'], 'less', -COLLAPSE) if c['n'] >= 2 else float('nan')
        if worse < ALPHA:
            return 'reproduced', f'{100 * c["mean"]:+.1f} AP, significantly below -3 AP'
        if c['a_bad'] == 0 and c['n'] >= 2 and (c['mean'] > -COLLAPSE or
                                                _ttest(c['d'], 'greater', -COLLAPSE) < ALPHA):
            return 'not reproduced', (f'every run trained; {100 * c["mean"]:+.1f} AP against '
                                      'the reference')
        return 'inconclusive', f'{100 * c["mean"]:+.1f} AP'
    raise ValueError(kind)


# claim id, the paper's claim, [(label, kind, (part, norm, batch), (part, norm, batch), task)]
def claims(parts: set) -> list:
    out = []

    def have(*keys):
        return all(k[0] in parts for k in keys)

    mabn = []
    for det, part, big in (('SSDLite', 'ssdlite', ('ssdlite', 'BN', 16)),
                           ('RetinaNet', 'retinanet', ('retinanet_bn16', 'BN', 16)),
                           ('Mask R-CNN', 'mask_rcnn', ('mask_rcnn_bn16', 'BN', 16))):
        if have((part,), big):
            mabn += [(f'{det}: MABN at 2/GPU beats BN at 2/GPU', 'beats', (part, 'MABN', 2),
                      (part, 'BN', 2), 'bbox'),
                     (f'{det}: MABN at 2/GPU matches BN at 16/GPU', 'matches', (part, 'MABN', 2),
                      big, 'bbox')]
    if have(('mask_rcnn',), ('mask_rcnn_bn16',)):
        mabn += [('Mask R-CNN (mask AP): MABN at 2/GPU beats BN at 2/GPU', 'beats',
                  ('mask_rcnn', 'MABN', 2), ('mask_rcnn', 'BN', 2), 'segm'),
                 ('Mask R-CNN (mask AP): MABN at 2/GPU matches BN at 16/GPU', 'matches',
                  ('mask_rcnn', 'MABN', 2), ('mask_rcnn_bn16', 'BN', 16), 'segm')]
    out.append(('mabn', 'MABN (Yan et al. 2020): at a small batch MABN matches BN at a large '
                'batch and beats BN at the small batch', mabn))
    frn = []
    for det, part in (('SSDLite', 'ssdlite'), ('RetinaNet', 'retinanet'),
                      ('Mask R-CNN', 'mask_rcnn')):
        if part in parts:
            frn += [(f'{det}: FRN beats GN at 2/GPU', 'beats', (part, 'FRN', 2), (part, 'GN', 2),
                     'bbox'),
                    (f'{det}: FRN beats BN at 2/GPU', 'beats', (part, 'FRN', 2), (part, 'BN', 2),
                     'bbox')]
    out.append(('frn', 'FRN (Singh & Krishnan 2020): FRN beats GN and BN at small batch', frn))
    dnb = []
    if 'ssdlite' in parts:
        dnb += [('SSDLite: DN-B beats BN at 16/GPU', 'beats', ('ssdlite', 'DNB', 16),
                 ('ssdlite', 'BN', 16), 'bbox'),
                ('SSDLite: DN-B beats BN at 2/GPU (smaller batch)', 'beats', ('ssdlite', 'DNB', 2),
                 ('ssdlite', 'BN', 2), 'bbox')]
    for mult in (2, 4):
        part = f'ssdlite_lr{mult}x'
        if part in parts:
            dnb.append((f'SSDLite: DN-B beats BN at {mult}x the LR (16/GPU)', 'beats',
                        (part, 'DNB', 16), (part, 'BN', 16), 'bbox'))
    out.append(('dnb', 'DN-B (Liu et al. 2021): DN-B beats BN on SSDLite and holds up at higher '
                'LR and smaller batch', dnb))
    dnc = []
    for det, part in (('SSDLite', 'ssdlite'), ('RetinaNet', 'retinanet'),
                      ('Mask R-CNN', 'mask_rcnn')):
        if part in parts:
            for batch in ((2, 16) if part == 'ssdlite' else (2,)):
                dnc.append((f'{det}: DN-C does not train normally at {batch}/GPU (vs BN)', 'fails',
                            (part, 'DNC', batch), (part, 'BN', batch), 'bbox'))
    out.append(('dnc', 'DN-C (Liu et al. 2021): DN-C "can\'t train normally"', dnc))
    rbn = []
    for det, part, batches in (('SSDLite', 'ssdlite', (2, 16)), ('RetinaNet', 'retinanet', (2,)),
                               ('Mask R-CNN', 'mask_rcnn', (2,))):
        if part in parts:
            rbn += [(f'{det}: RBN beats BN at {b}/GPU', 'beats', (part, 'RBN', b), (part, 'BN', b),
                     'bbox') for b in batches]
    out.append(('rbn', "Revisiting BN (Davis & Frank): RBN's initialisation and update give a "
                'significant gain over BN', rbn))
    if have(('dn_sc_normalized',), ('ssdlite',)):
        out.append(('dn_ablation', "Ablation of our DN interpretation (no public code): the SC "
                    "module on scale-invariant statistics instead of the raw mean and std", [
                        ("SSDLite: DN-B with normalized SC input beats the raw input (16/GPU)",
                         'beats', ('dn_sc_normalized', 'DNB', 16), ('ssdlite', 'DNB', 16), 'bbox'),
                        ("SSDLite: DN-B with the raw SC input beats the normalized (16/GPU)",
                         'beats', ('ssdlite', 'DNB', 16), ('dn_sc_normalized', 'DNB', 16),
                         'bbox')]))
    return out


def _pct(v):
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{100 * v:.1f}'


def _ms(vals):
    if not vals:
        return '-'
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return f'{100 * m:.1f}'
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f'{100 * m:.1f} ± {100 * s:.1f}'


def evaluate(plan, work_dir: str):
    """The runs of every part of ``plan`` and the rows of every claim."""
    parts_runs = {}
    for part in plan:
        d = osp.join(work_dir, part.name)
        runs = collect([d]) if osp.isdir(d) else []
        mark_duplicates(runs)
        parts_runs[part.name] = [r for r in runs if r['status'] != 'skipped']
    table = runs_by(parts_runs)
    results = []
    for cid, text, rows in claims({p for p, rs in parts_runs.items() if rs}):
        ruled = []
        for label, kind, ka, kb, task in rows:
            c = compare(table.get(ka, {}), table.get(kb, {}), task)
            ruled.append(dict(label=label, kind=kind, a=ka, b=kb, task=task, cmp=c,
                              verdict=verdict(kind, c)))
        results.append(dict(id=cid, text=text, rows=ruled))
    return parts_runs, table, results


def overall(rows) -> str:
    vs = [r['verdict'][0] for r in rows]
    if not vs:
        return 'not tested (no runs)'
    if all(v == 'reproduced' for v in vs):
        return 'reproduced'
    if all(v == 'not reproduced' for v in vs):
        return 'not reproduced'
    counts = {v: vs.count(v) for v in ('reproduced', 'not reproduced', 'inconclusive')}
    return 'mixed: ' + ', '.join(f'{k} in {n} of {len(vs)}' for k, n in counts.items() if n)


def markdown(plan, parts_runs, table, results, argv, extra: str = '') -> str:
    cmd = 'python tools/study.py ' + ' '.join(shlex.quote(a) for a in argv)
    lines = ['# Results: the papers\' claims on the embedded benchmark', '',
             'Regenerate everything (resumable: it trains only the runs still missing, then '
             'writes this file and `docs/study/`):', '', '```bash', f'bash tools/env.sh {cmd.strip()}', '```', '',
             *_completeness(plan, parts_runs), '',
             'Rules (`normdet/results.py`; all but the last were fixed before the runs):', '',
             *_rules(), '',
             '## Verdicts', '',
             '| claim | verdict |', '|---|---|']
    for res in results:
        lines.append(f"| {res['text']} | **{overall(res['rows'])}** |")
    for res in results:
        lines += ['', f"## {res['text']}", '',
                  '| comparison | AP (%) claimed better, mean ± std | other | d (AP) mean ± std '
                  '| p(d > 0) | p(d < 0) | seeds | verdict | why |', '|---' * 9 + '|']
        for r in res['rows']:
            c = r['cmp']
            d = (f'{100 * c["mean"]:+.2f} ± {100 * c["std"]:.2f}' if c['n'] > 1 else
                 (f'{100 * c["mean"]:+.2f}' if c['n'] else '-'))
            task = '' if r['task'] == 'bbox' else ' (mask)'
            lines.append(f"| {r['label']}{task} | {_ms(c['a'])} | {_ms(c['b'])} | {d} | "
                         f"{_p(c['p_greater'])} | {_p(c['p_less'])} | {c['n']} | "
                         f"**{r['verdict'][0]}** | {r['verdict'][1]} |")
    lines += ['', '## Every group', '',
              '| part | norm | batch/GPU | runs | AP (%) | AP50 | AP75 | not finished |',
              '|---' * 8 + '|']
    for (part, norm, batch), g in sorted(table.items(), key=lambda kv: tuple(map(str, kv[0]))):
        done = [r for r in g.values() if r['status'] == 'done']
        lines.append(f'| {part} | {norm} | {batch} | {len(g)} | '
                     f"{_ms([ap(r) for r in done if ap(r) is not None])} | "
                     f"{_ms([r['metrics'].get('bbox_mAP_50') for r in done])} | "
                     f"{_ms([r['metrics'].get('bbox_mAP_75') for r in done])} | "
                     f"{len(g) - len(done)} |")
    lines += ['', '## The parts of the study', '']
    for part in plan:
        n = len(parts_runs.get(part.name) or [])
        opts = f"; options `{' '.join(part.options)}`" if part.options else ''
        where = (f'Report and plots: [study/{part.name}/report.md](study/{part.name}/report.md)'
                 if n else 'Not run.')
        lines.append(f'- **{part.name}** ({n} runs found{", optional" if part.optional else ""}):'
                     f' {part.what}; `{part.detector}`, norms {", ".join(part.norms)}, batch '
                     f'{part.batch}, seeds {part.seeds}, {part.epochs} epochs{opts}. {where}')
    return '\n'.join(lines) + '\n' + ('\n' + extra if extra else '')


def _completeness(plan, parts_runs) -> list:
    """How much of the plan the results stand on: planned and finished runs per part."""
    rows, planned, finished = [], 0, 0
    for part in plan:
        done = sum(r['status'] == 'done' for r in parts_runs.get(part.name) or [])
        if not part.optional:
            planned, finished = planned + len(part.runs()), finished + done
        rows.append(f'| {part.name}{" (optional)" if part.optional else ""} | '
                    f'{len(part.runs())} | {done} |')
    head = (f'**{finished} of the {planned} runs of the plan have finished.**' +
            (' The comparisons of the missing runs are inconclusive (no paired seeds) until '
             'the command above trains them (it trains only what is missing).'
             if finished < planned else ''))
    return [head, '', '| part | planned runs | finished |', '|---|---|---|', *rows]


def _rules() -> list:
    """The verdict rules of the module docstring, one Markdown list item each."""
    text = __doc__.split('fixed before looking at the numbers:')[1].strip()
    items = [' '.join(chunk.split()) for chunk in text.split('\n- ')]
    return [i if i.startswith('- ') else f'- {i}' for i in items]


def _p(p):
    return '-' if isinstance(p, float) and math.isnan(p) else f'{p:.3f}'


def write_results(plan, work_dir: str, out: str, argv=(), extra: str = '') -> str:
    """Evaluate the claims and write ``out`` (Markdown), plus each part's report and plots
    (normdet.study) into ``<out's folder>/study/<part>/``."""
    from .io import atomic_write
    from .study import write_study
    parts_runs, table, results = evaluate(plan, work_dir)
    for part in plan:
        if parts_runs.get(part.name):
            write_study([osp.join(work_dir, part.name)],
                        osp.join(osp.dirname(out), 'study', part.name))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    atomic_write(out, markdown(plan, parts_runs, table, results, list(argv), extra))
    return out
