"""The opening screen of docs/results.md: which norm to use at 2 images per GPU on each detector,
read from the papers' protocol (normdet.study.plan.papers_parts: 8 processes of 2 on both variants
of the benchmark), and the small-batch curve behind it.

The rule, fixed before the runs: per detector, the norms are ranked by their mean box AP at 8 x 2
over both variants (each variant's mean, averaged). The first is the one to use; a norm is "as
good within noise" when its paired difference from the first is not significantly negative
(one-sided paired t-test, p >= 0.05) on either variant. No norm is named while a norm of the
part has fewer than 2 seeds on the benchmark; the second variant counts once every norm has 2
seeds on it (a bookkeeping fix of 2026-12-07: a variant begun with one norm ranked that norm).
"""
import math
import os.path as osp

from .claims import ALPHA, NAMES, compare
from .plan import (CURVE_NORMS, PAPERS_DETECTORS, PAPERS_NORMS, SEEDS, VARIANT_B, papers,
                   papers_ref)
from .report import mean_pm
from .runs import ap
from .stats import mean_std

CURVE_PNG = 'small_batch_curve.png'
# (part, images per process) of the small-batch curve, at a total batch of 16
CURVE_CELLS = (('papers_ssdlite_ref', 16), ('curve_1x16', 16), ('curve_4x4', 4),
               ('papers_ssdlite', 2), ('curve_16x1', 1))


def _aps(group: dict) -> dict:
    return {s: ap(r) for s, r in group.items() if ap(r) is not None}


def advice(table: dict) -> list:
    """Per detector with runs of the papers' protocol: a dict of the norm to use, its APs, the
    norms as good within noise, BN per process and the reference, by the module's rule;
    ``table``: claims.runs_by's."""
    out = []
    for det in PAPERS_DETECTORS:
        aps = {v: {n: _aps(g) for (p, n, b), g in table.items() if p == papers(det, v)}
               for v in ('', VARIANT_B)}
        # a variant counts once every norm has 2 seeds on it: one begun (BN only) would rank
        # the norms that have runs there alone
        variants = [v for v in ('', VARIANT_B) if v == '' or all(
            len(aps[v].get(n, {})) >= 2 for n in PAPERS_NORMS)]
        norms = [n for n, a in aps[''].items() if a]
        if not norms:
            continue
        score = {n: sum(mean_std(aps[v].get(n, {}).values())[0] for v in variants) / len(variants)
                 for n in norms}
        ranked = sorted((n for n in norms if not math.isnan(score[n])), key=score.get,
                        reverse=True)
        best = ranked[0]

        def worse(n, v):  # n significantly below best on variant v (paired by seed)
            cell = lambda norm: table.get((papers(det, v), norm, 2), {})  # noqa: E731
            return compare(cell(n), cell(best))['p_less'] < ALPHA

        ref = {v: _aps(table.get((papers_ref(det, v), 'BN', 16), {})) for v in variants}
        out.append(dict(
            detector=NAMES[det], best=best, variants=variants,
            missing=[n for n in PAPERS_NORMS if len(aps[''].get(n, {})) < 2],
            ap={v: list(aps[v].get(best, {}).values()) for v in variants},
            tied=[n for n in ranked[1:] if not any(worse(n, v) for v in variants)],
            score=score, seeds=min(len(aps[''].get(n, {})) for n in PAPERS_NORMS),
            bn={v: list(aps[v].get('BN', {}).values()) for v in variants},
            ref={v: list(ref[v].values()) for v in variants}))
    return out


def advice_markdown(rows: list, figure: str = None) -> list:
    """The opening screen's lines: the table of ``advice`` and the curve."""
    if not rows:
        return ["**Which norm at 2 images per GPU: not measured yet.** The papers' protocol (8 "
                'processes of 2 images, the optional `papers_*` parts) has no finished runs; the '
                "verdicts below come from the one-process study (its optimizer sees 2 images), "
                "which is not the papers' experiment."]

    def both(d):
        return ' / '.join(mean_pm(*mean_std(d[v])) for v in ('', VARIANT_B) if v in d) + (
            '' if VARIANT_B in d else ' (benchmark only)')
    lines = ["## Which norm at 2 images per GPU", '',
             "Box AP (%) at the papers' protocol: 8 processes of 2 images, the optimizer on 16; "
             'benchmark / its second variant, mean ± std over seeds. The rule: '
             '`normdet/study/advice.py`; the verdicts behind it follow.', '',
             '| detector | use | its AP | as good within noise | BN per process | SyncBN '
             'reference (16) |', '|---|---|---|---|---|---|']
    provisional = False  # a norm named on fewer seeds than the plan trains
    for r in rows:
        if r.get('missing'):  # not every norm measured: no advice yet, the best so far shown
            lines.append(f"| {r['detector']} | not yet ({', '.join(r['missing'])}: fewer than 2 "
                         f"seeds) | best so far {r['best']}: {both(r['ap'])} | - | "
                         f"{both(r['bn'])} | {both(r['ref'])} |")
            continue
        few = r['seeds'] < len(SEEDS)  # the rule rules on fewer seeds than the plan trains
        provisional = provisional or few
        tied = ', '.join(f"{n} ({100 * r['score'][n]:.1f})" for n in r['tied'])
        lines.append(f"| {r['detector']} | **{r['best']}**"
                     + (f" (provisional: {r['seeds']} of {len(SEEDS)} seeds)" if few else '')
                     + f" | {both(r['ap'])} | {tied or 'none'} | {both(r['bn'])} | "
                     f"{both(r['ref'])} |")
    if provisional:
        lines += ['', 'As good within noise: not significantly below the first (its mean AP in '
                      f'brackets). On fewer seeds than the plan\'s {len(SEEDS)}, a paired t-test '
                      'has few degrees of freedom (one on 2 seeds), so only a difference far '
                      'beyond the seeds\' spread comes out significant: read the APs, and take '
                      'a provisional ranking as one.']
    if figure:
        lines += ['', f'![AP against images per process at a total batch of 16]({figure})']
    return lines


def curve_points(table: dict) -> dict:
    """{norm: [(images per process, [APs])]} of the small-batch curve (SSDLite, benchmark); empty
    until some norm has two points (a curve)."""
    pts = {}
    for part, per in CURVE_CELLS:
        for norm in CURVE_NORMS:
            aps = list(_aps(table.get((part, norm, per), {})).values())
            if aps:
                pts.setdefault(norm, []).append((per, aps))
    return pts if any(len(p) > 1 for p in pts.values()) else {}


def plot_curve(table: dict, out_dir: str):
    """docs/study/small_batch_curve.png (the file name), or None without points."""
    pts = curve_points(table)
    if not pts:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for norm, xs in sorted(pts.items()):
        xs = sorted(xs)
        ax.errorbar([x for x, _ in xs], [100 * mean_std(a)[0] for _, a in xs],
                    yerr=[0 if len(a) < 2 else 100 * mean_std(a)[1] for _, a in xs],
                    marker='o', capsize=3, label=norm)
    ref = list(_aps(table.get((papers_ref('ssdlite'), 'BN', 16), {})).values())
    if ref:
        ax.axhline(100 * mean_std(ref)[0], color='k', ls='--', lw=1,
                   label='SyncBN (any layout of 16)')
    ax.set_xscale('log', base=2)
    ax.set_xticks([1, 2, 4, 16], labels=['1', '2', '4', '16'])
    ax.set_xlabel('images per process (total batch 16)')
    ax.set_ylabel('box AP (%)')
    ax.set_title('SSDLite-mini: the small-batch curve')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, CURVE_PNG), dpi=110)
    plt.close(fig)
    return CURVE_PNG

