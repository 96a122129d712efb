"""The papers' claims and the rules that rule on them from the study's runs (tools/study.py).

Each claim is a comparison of two groups of runs that differ in one thing (the norm, or the
batch, or the LR), paired by seed (same seed: same initialisation and data order). A group is a
cell of the plan, (part, norm, images per GPU); the claims name the plan's parts through
normdet.study.plan's constants. Per pair the difference d = AP(claimed better) - AP(other); over
the seeds, the mean and std of d and the one-sided paired t-tests in both directions
(normdet.study.stats: with no spread in d, its sign decides). The verdict rules (docs/results.md
lists them) are fixed before looking at the numbers:

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
- The papers' protocol (8 processes of 2) runs every comparison on both variants of the benchmark:
  it is **reproduced** only where it is reproduced on both, **not reproduced** where either
  variant rules it not reproduced, and **inconclusive** otherwise (including while the second
  variant has no runs).
- Seeds: a comparison is tested on at least 2 paired seeds, and on the papers' protocol and its
  ablations on at least 3 (the seeds issue 31 budgets for every comparison); with fewer it is
  **inconclusive**, except a "does not train normally" whose runs diverged. The 3 was added when
  the second variant's first 2 paired seeds gave a t-test on one degree of freedom; it only
  turns verdicts into "inconclusive".
- Floor: a "beats" or "matches" comparison in which both sides average below 2 AP is
  **inconclusive** (neither detector has started to detect; the difference is noise). This
  rule was added after the first runs of the study showed GN and FRN near 0 AP at the budgeted
  schedule; it only turns verdicts into "inconclusive".
"""
import os.path as osp

from .plan import (ABLATION_CENCONV, ABLATION_DNC, ABLATION_DNC_INPUT, DN_SC_NORMALIZED,
                   GN_PLACEMENTS, LR_MULTS, MABN_MOVING, MASK_RCNN, MASK_RCNN_BN16,
                   PAPERS_DETECTORS, RETINANET, RETINANET_BN16, SSDLITE, VARIANT_B, ablation_gn,
                   ablation_mabn, papers, papers_ref, ssdlite_lr)
from .runs import ap, collect, mark_duplicates
from .stats import mean_std, t_test

MARGIN = 0.01      # "matches": within 1 AP
COLLAPSE = 0.03    # "does not train normally": worse by more than 3 AP
FLOOR = 0.02       # both sides below 2 AP: no verdict
ALPHA = 0.05
MIN_SEEDS = 2         # paired seeds a comparison needs for a test
PAPERS_MIN_SEEDS = 3  # on the papers' protocol and its ablations
DETECTORS = (('SSDLite', SSDLITE), ('RetinaNet', RETINANET), ('Mask R-CNN', MASK_RCNN))


def _p(d, alternative, popmean=0.0) -> float:
    return t_test(d, alternative, popmean)[1]


def runs_by(parts_runs) -> dict:
    """{(part, norm, batch): {seed: run}} for the counted runs (latest of duplicates)."""
    table = {}
    for part, runs in parts_runs.items():
        for r in runs:
            if 'duplicate_of' in r:
                continue
            table.setdefault((part, r['norm'], r['batch']), {})[r['seed']] = r
    return table


def compare(a: dict, b: dict, task='bbox') -> dict:
    """Paired comparison of two {seed: run} groups: the differences d of the seeds both have
    an AP for, their mean and std, the p-values of d > 0 and d < 0, each side's APs and its
    runs that did not finish."""
    seeds = sorted(s for s in set(a) & set(b)
                   if ap(a[s], task) is not None and ap(b[s], task) is not None)
    d = [ap(a[s], task) - ap(b[s], task) for s in seeds]
    mean, std = mean_std(d)
    aps = lambda g: [ap(g[s], task) for s in sorted(g) if ap(g[s], task) is not None]  # noqa
    return dict(seeds=seeds, n=len(d), d=d, mean=mean, std=std,
                p_greater=_p(d, 'greater'), p_less=_p(d, 'less'), a=aps(a), b=aps(b),
                a_bad=sum(r['status'] != 'done' for r in a.values()),
                b_bad=sum(r['status'] != 'done' for r in b.values()))


def verdict(kind: str, c: dict, min_seeds: int = MIN_SEEDS) -> tuple:
    """(verdict, why) of a comparison ``c`` (``compare``) of the ``kind`` 'beats', 'matches' or
    'fails', tested on at least ``min_seeds`` paired seeds, by the rules of the module
    docstring."""
    few = f'{c["n"]} paired seed(s): too few for a test (it needs {min_seeds})'
    if c['n'] < min_seeds and kind != 'fails':
        return 'inconclusive', few
    if kind != 'fails' and c['a'] and c['b'] and max(mean_std(c['a'])[0],
                                                     mean_std(c['b'])[0]) < FLOOR:
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
        lo = _p(c['d'], 'greater', -MARGIN)
        hi = _p(c['d'], 'less', MARGIN)
        if max(lo, hi) < ALPHA:
            return 'reproduced', f'within +-{100 * MARGIN:.0f} AP (TOST p = {max(lo, hi):.3f})'
        if _p(c['d'], 'less', -MARGIN) < ALPHA or _p(c['d'], 'greater', MARGIN) < ALPHA:
            return 'not reproduced', (f'{100 * c["mean"]:+.1f} AP: significantly outside '
                                      f'+-{100 * MARGIN:.0f} AP')
        return 'inconclusive', (f'{100 * c["mean"]:+.1f} AP; equivalence within '
                                f'+-{100 * MARGIN:.0f} AP not shown (TOST p = {max(lo, hi):.3f})')
    if kind == 'fails':  # a = the norm claimed not to train, b = the reference
        if c['a_bad'] > c['b_bad']:
            return 'reproduced', f'{c["a_bad"]} run(s) diverged or failed'
        if c['n'] < min_seeds:
            return 'inconclusive', few
        if _p(c['d'], 'less', -COLLAPSE) < ALPHA:
            return 'reproduced', f'{100 * c["mean"]:+.1f} AP, significantly below -3 AP'
        if c['a_bad'] == 0 and (c['mean'] > -COLLAPSE or
                                _p(c['d'], 'greater', -COLLAPSE) < ALPHA):
            return 'not reproduced', (f'every run trained; {100 * c["mean"]:+.1f} AP against '
                                      'the reference')
        return 'inconclusive', f'{100 * c["mean"]:+.1f} AP'
    raise ValueError(kind)


NAMES = dict(ssdlite='SSDLite', retinanet='RetinaNet', mask_rcnn='Mask R-CNN')
REF = 'SyncBN reference'
ONE_PROCESS = (" [the one-process study: 2 images per GPU is 1 process of 2, the optimizer on 2; "
               "not the papers' protocol]")


def papers_claims_for(parts) -> list:
    """The claims ruled on the papers' protocol (normdet.study.plan.papers_parts), in
    ``claims_for``'s form, each comparison with a sixth item: its two cells on the benchmark's
    second variant."""
    by_claim = {k: [] for k in ('mabn', 'frn', 'dnb', 'dnc', 'rbn')}
    for det in PAPERS_DETECTORS:
        part, ref, name = papers(det), papers_ref(det), NAMES[det]
        if part not in parts:
            continue

        def row(label, kind, a, b, task='bbox'):
            second = tuple((p + VARIANT_B, n, bs) for p, n, bs in (a, b))
            mask = ' (mask AP)' if task == 'segm' else ''
            return (f'{name}{mask}: {label}', kind, a, b, task, second)

        small = lambda norm: (part, norm, 2)  # noqa: E731
        tasks = ('bbox', 'segm') if det == MASK_RCNN else ('bbox', )
        for task in tasks:
            by_claim['mabn'] += [row('MABN beats BN (8 x 2)', 'beats', small('MABN'), small('BN'),
                                     task),
                                 row(f'MABN (8 x 2) matches the {REF}', 'matches', small('MABN'),
                                     (ref, 'BN', 16), task)]
        by_claim['frn'] += [row('FRN beats GN (8 x 2)', 'beats', small('FRN'), small('GN')),
                            row('FRN beats BN (8 x 2)', 'beats', small('FRN'), small('BN'))]
        by_claim['dnb'].append(row('DN-B beats BN (8 x 2)', 'beats', small('DNB'), small('BN')))
        if det == SSDLITE:
            by_claim['dnb'].append(row('DN-B beats BN (1 x 16)', 'beats', (ref, 'DNB', 16),
                                       (ref, 'BN', 16)))
        by_claim['dnc'].append(row('DN-C does not train normally (8 x 2, vs BN)', 'fails',
                                   small('DNC'), small('BN')))
        by_claim['rbn'].append(row('RBN beats BN (8 x 2)', 'beats', small('RBN'), small('BN')))
    texts = dict(
        mabn="MABN (Yan et al. 2020): at 2 images per GPU MABN beats BN and matches SyncBN",
        frn='FRN (Singh & Krishnan 2020): FRN beats GN and BN at 2 images per GPU',
        dnb='DN-B (Liu et al. 2021): DN-B beats BN',
        dnc='DN-C (Liu et al. 2021): DN-C "can\'t train normally"',
        rbn="Revisiting BN (Davis & Frank): RBN's initialisation and update beat BN")
    return [(f'papers_{k}', texts[k] + " (the papers' protocol, 8 processes of 2, both "
             'variants of the benchmark)', rows) for k, rows in by_claim.items() if rows]


def ablation_claims_for(parts) -> list:
    """The ablations of the anomalies (normdet.study.plan.ablation_parts), in ``claims_for``'s
    form: each against the papers' cell it changes one thing of, in both directions where
    neither side is the paper's claim."""
    ssd, ret = papers('ssdlite'), papers('retinanet')
    out = []

    def both_ways(prefix, label_a, a, label_b, b):  # 'SSDLite: DN-C ' + 'literal SC beats ...'
        return [(f'{prefix}{label_a} beats {label_b}', 'beats', a, b, 'bbox'),
                (f'{prefix}{label_b} beats {label_a}', 'beats', b, a, 'bbox')]
    rows = []
    for m in MABN_MOVING:
        if ablation_mabn(m) in parts and ret in parts:
            rows += both_ways('RetinaNet: MABN with ', f'the {m} moving average only'
                              if m != 'none' else 'no moving average',
                              (ablation_mabn(m), 'MABN', 2), 'both (the paper\'s)',
                              (ret, 'MABN', 2))
    if rows:
        out.append(('ablation_mabn', "Ablation: which of MABN's moving averages (forward: of "
                    'x^2, backward: of g z) decides its training, 8 x 2', rows))
    if ABLATION_CENCONV in parts and ssd in parts:
        out.append(('ablation_cenconv', "Ablation: CenConv on MobileNetV2's depthwise convs "
                    '(SSDLite MABN, 8 x 2)', both_ways(
                        'SSDLite MABN: ', 'depthwise convs plain', (ABLATION_CENCONV, 'MABN', 2),
                        'every conv centred', (ssd, 'MABN', 2))))
    if ABLATION_DNC in parts and ssd in parts:
        out.append(('ablation_dnc', "Ablation: DN-C with the paper's literal SC module (SSDLite, "
                    '8 x 2)', [
                        ('SSDLite: DN-C (literal SC) does not train normally (vs BN)', 'fails',
                         (ABLATION_DNC, 'DNC', 2), (ssd, 'BN', 2), 'bbox'),
                        *both_ways('SSDLite: DN-C, ', 'residual SC', (ssd, 'DNC', 2), 'literal SC',
                                   (ABLATION_DNC, 'DNC', 2))]))
    ssd_b = papers('ssdlite', VARIANT_B)
    if ABLATION_DNC_INPUT in parts and ssd_b in parts:
        out.append(('ablation_dnc_input', "Ablation: DN-C's SC module on raw or scale-invariant "
                    'statistics (SSDLite, 8 x 2, second variant)', both_ways(
                        'SSDLite (second variant): DN-C, ', 'normalized SC input',
                        (ABLATION_DNC_INPUT, 'DNC', 2), 'raw SC input', (ssd_b, 'DNC', 2))))
    gn = [pl for pl in GN_PLACEMENTS if ablation_gn(pl) in parts]
    if gn and 'curve_1x16' in parts:
        rows = [(f'SSDLite: GN after the {pl} convs only beats GN everywhere', 'beats',
                 (ablation_gn(pl), 'GN', 16), ('curve_1x16', 'GN', 16), 'bbox') for pl in gn]
        if len(gn) == 2:
            rows += both_ways('SSDLite: GN ', 'after the depthwise convs only',
                              (ablation_gn('depthwise'), 'GN', 16), 'after the 1x1 convs only',
                              (ablation_gn('pointwise'), 'GN', 16))
        out.append(('ablation_gn', 'Ablation: where GN fails inside MobileNetV2 (SSDLite, 1 x 16; '
                    'BN after the other convs)', rows))
    return out


def combine(first: tuple, second: tuple, second_n: int) -> tuple:
    """One verdict from a comparison's verdicts on the benchmark's two variants (the rule of the
    module docstring); ``second_n``: the second variant's paired seeds."""
    if not second_n:
        return 'inconclusive', (f'{first[0]} on the benchmark; the second variant has no seed '
                                'trained on both sides yet')
    both = f'benchmark: {first[0]} ({first[1]}); second variant: {second[0]} ({second[1]})'
    if first[0] == second[0] == 'reproduced':
        return 'reproduced', both
    if 'not reproduced' in (first[0], second[0]):
        return 'not reproduced', both
    return 'inconclusive', both


def claims_for(parts) -> list:
    """The claims, as (id, the paper's claim, [(label, kind, (part, norm, batch) claimed better,
    (part, norm, batch) other, task)]): the comparisons of the parts in ``parts`` (the names of
    the parts with runs)."""
    out = []

    def have(*names):
        return all(n in parts for n in names)

    mabn = []
    for (det, part), big in zip(DETECTORS, ((SSDLITE, 'BN', 16), (RETINANET_BN16, 'BN', 16),
                                            (MASK_RCNN_BN16, 'BN', 16))):
        if have(part, big[0]):
            mabn += [(f'{det}: MABN at 2/GPU beats BN at 2/GPU', 'beats', (part, 'MABN', 2),
                      (part, 'BN', 2), 'bbox'),
                     (f'{det}: MABN at 2/GPU matches BN at 16/GPU', 'matches', (part, 'MABN', 2),
                      big, 'bbox')]
    if have(MASK_RCNN, MASK_RCNN_BN16):
        mabn += [('Mask R-CNN (mask AP): MABN at 2/GPU beats BN at 2/GPU', 'beats',
                  (MASK_RCNN, 'MABN', 2), (MASK_RCNN, 'BN', 2), 'segm'),
                 ('Mask R-CNN (mask AP): MABN at 2/GPU matches BN at 16/GPU', 'matches',
                  (MASK_RCNN, 'MABN', 2), (MASK_RCNN_BN16, 'BN', 16), 'segm')]
    out.append(('mabn', 'MABN (Yan et al. 2020): at a small batch MABN matches BN at a large '
                'batch and beats BN at the small batch', mabn))
    frn = []
    for det, part in DETECTORS:
        if have(part):
            frn += [(f'{det}: FRN beats GN at 2/GPU', 'beats', (part, 'FRN', 2), (part, 'GN', 2),
                     'bbox'),
                    (f'{det}: FRN beats BN at 2/GPU', 'beats', (part, 'FRN', 2), (part, 'BN', 2),
                     'bbox')]
    out.append(('frn', 'FRN (Singh & Krishnan 2020): FRN beats GN and BN at small batch', frn))
    dnb = []
    if have(SSDLITE):
        dnb += [('SSDLite: DN-B beats BN at 16/GPU', 'beats', (SSDLITE, 'DNB', 16),
                 (SSDLITE, 'BN', 16), 'bbox'),
                ('SSDLite: DN-B beats BN at 2/GPU (smaller batch)', 'beats', (SSDLITE, 'DNB', 2),
                 (SSDLITE, 'BN', 2), 'bbox')]
    for mult in LR_MULTS:
        if have(ssdlite_lr(mult)):
            dnb.append((f'SSDLite: DN-B beats BN at {mult}x the LR (16/GPU)', 'beats',
                        (ssdlite_lr(mult), 'DNB', 16), (ssdlite_lr(mult), 'BN', 16), 'bbox'))
    out.append(('dnb', 'DN-B (Liu et al. 2021): DN-B beats BN on SSDLite and holds up at higher '
                'LR and smaller batch', dnb))
    dnc = []
    for det, part in DETECTORS:
        if have(part):
            for batch in ((2, 16) if part == SSDLITE else (2,)):
                dnc.append((f'{det}: DN-C does not train normally at {batch}/GPU (vs BN)', 'fails',
                            (part, 'DNC', batch), (part, 'BN', batch), 'bbox'))
    out.append(('dnc', 'DN-C (Liu et al. 2021): DN-C "can\'t train normally"', dnc))
    rbn = []
    for det, part in DETECTORS:
        if have(part):
            rbn += [(f'{det}: RBN beats BN at {b}/GPU', 'beats', (part, 'RBN', b), (part, 'BN', b),
                     'bbox') for b in ((2, 16) if part == SSDLITE else (2,))]
    out.append(('rbn', "Revisiting BN (Davis & Frank): RBN's initialisation and update give a "
                'significant gain over BN', rbn))
    if have(DN_SC_NORMALIZED, SSDLITE):
        out.append(('dn_ablation', "Ablation of our DN interpretation (no public code): the SC "
                    "module on scale-invariant statistics instead of the raw mean and std", [
                        ("SSDLite: DN-B with normalized SC input beats the raw input (16/GPU)",
                         'beats', (DN_SC_NORMALIZED, 'DNB', 16), (SSDLITE, 'DNB', 16), 'bbox'),
                        ("SSDLite: DN-B with the raw SC input beats the normalized (16/GPU)",
                         'beats', (SSDLITE, 'DNB', 16), (DN_SC_NORMALIZED, 'DNB', 16),
                         'bbox')]))
    return [(cid, text + ONE_PROCESS, rows) for cid, text, rows in out]


def collect_parts(plan, work_dir: str) -> dict:
    """{part name: its runs in ``work_dir/<part>``, skipped folders left out, duplicates
    flagged} for every part of ``plan``."""
    parts_runs = {}
    for part in plan:
        d = osp.join(work_dir, part.name)
        runs = collect([d]) if osp.isdir(d) else []
        mark_duplicates(runs)
        parts_runs[part.name] = [r for r in runs if r['status'] != 'skipped']
    return parts_runs


def rule_claims(parts_runs: dict) -> list:
    """Every claim of the parts with runs, each comparison with its ``compare`` and
    ``verdict``."""
    table = runs_by(parts_runs)
    have = {p for p, rs in parts_runs.items() if rs}
    results = []
    papers_protocol = papers_claims_for(have) + ablation_claims_for(have)
    on_papers = {cid for cid, *_ in papers_protocol}
    for cid, text, rows in papers_protocol + claims_for(have):
        ruled = []
        n = PAPERS_MIN_SEEDS if cid in on_papers else MIN_SEEDS
        for label, kind, ka, kb, task, *also in rows:
            c = compare(table.get(ka, {}), table.get(kb, {}), task)
            r = dict(label=label, kind=kind, a=ka, b=kb, task=task, cmp=c,
                     verdict=verdict(kind, c, n))
            if also:  # the papers' protocol: the same comparison on the second variant
                (ka2, kb2), = also
                c2 = compare(table.get(ka2, {}), table.get(kb2, {}), task)
                r.update(cmp_b=c2, verdict_a=r['verdict'], verdict_b=verdict(kind, c2, n),
                         verdict=combine(r['verdict'], verdict(kind, c2, n), c2['n']))
            ruled.append(r)
        results.append(dict(id=cid, text=text, rows=ruled))
    return results


def verdict_rules() -> list:
    """The verdict rules of this module's docstring, one Markdown list item each."""
    text = __doc__.split('fixed before looking at the numbers:')[1].strip()
    items = [' '.join(chunk.split()) for chunk in text.split('\n- ')]
    return [i if i.startswith('- ') else f'- {i}' for i in items]


def overall(rows) -> str:
    """One verdict for a claim from the verdicts of its comparisons."""
    vs = [r['verdict'][0] for r in rows]
    if not vs:
        return 'not tested (no runs)'
    if all(v == 'reproduced' for v in vs):
        return 'reproduced'
    if all(v == 'not reproduced' for v in vs):
        return 'not reproduced'
    counts = {v: vs.count(v) for v in ('reproduced', 'not reproduced', 'inconclusive')}
    return 'mixed: ' + ', '.join(f'{k} in {n} of {len(vs)}' for k, n in counts.items() if n)
