"""The verdict rules of normdet.study.claims, one test per rule and edge case, on records built
by hand (shaped as normdet.study.runs collects them); the claims compare cells of the plan; the
t-tests' rule for no spread. No training, no OpenMMLab."""
import json
import math

import pytest

from normdet.study.claims import (claims_for, combine, compare, papers_claims_for, rule_claims,
                                  verdict)
from normdet.study.plan import DEFAULT_EPOCHS, epochs_of, papers, papers_parts, papers_ref, plans
from normdet.study.stats import mean_std, paired_t_test, t_test


def group(*aps, norm='X', batch=2):
    """{seed: run} with these bbox APs, seeds 0, 1, ...; None: a run that diverged."""
    return {seed: dict(status='done' if v is not None else 'diverged', seed=seed, norm=norm,
                       batch=batch, metrics=None if v is None else {'bbox_mAP': v})
            for seed, v in enumerate(aps)}


def rule(kind, a, b):
    return verdict(kind, compare(group(*a), group(*b)))


BASE = (0.30, 0.32, 0.31)


def shifted(d, base=BASE):
    return tuple(x + y for x, y in zip(base, d))


# --- "A beats B" ---------------------------------------------------------------------------------

def test_beats_reproduced():
    v, why = rule('beats', shifted((0.02, 0.03, 0.025)), BASE)
    assert v == 'reproduced' and why.startswith('p = 0.0') and why.endswith('< 0.05')


def test_beats_not_reproduced_when_the_sign_is_wrong():
    v, why = rule('beats', shifted((-0.01, 0.02, -0.02)), BASE)
    assert (v, why) == ('not reproduced', 'the measured difference is -0.3 AP')


def test_beats_not_reproduced_significantly():
    v, why = rule('beats', shifted((-0.05, -0.06, -0.055)), BASE)
    assert v == 'not reproduced'
    assert why.startswith('the measured difference is -5.5 AP (significantly: p = 0.0')


def test_beats_inconclusive_when_positive_but_not_significant():
    v, why = rule('beats', shifted((0.03, -0.01, 0.02)), BASE)
    assert v == 'inconclusive' and why.startswith('+1.3 AP on average, p = 0.')
    assert why.endswith('>= 0.05')


# --- "A matches B" (TOST within +-1 AP) ----------------------------------------------------------

def test_matches_reproduced():
    v, why = rule('matches', shifted((0.001, -0.001, 0.0005)), BASE)
    assert v == 'reproduced' and why.startswith('within +-1 AP (TOST p = 0.0')


def test_matches_not_reproduced_outside_the_margin():
    v, why = rule('matches', shifted((-0.05, -0.06, -0.055)), BASE)
    assert (v, why) == ('not reproduced', '-5.5 AP: significantly outside +-1 AP')
    assert rule('matches', shifted((0.05, 0.06, 0.055)), BASE)[0] == 'not reproduced'  # above


def test_matches_inconclusive():
    v, why = rule('matches', shifted((0.01, -0.01, 0.02)), BASE)
    assert v == 'inconclusive' and why.startswith('+0.7 AP; equivalence within +-1 AP not shown')


# --- "A does not train normally" -----------------------------------------------------------------

def test_fails_reproduced_by_diverged_runs():
    assert rule('fails', (None, 0.31, 0.30), BASE) == (
        'reproduced', '1 run(s) diverged or failed')
    # both sides lost a run: the divergence says nothing of A
    assert rule('fails', (None, 0.31, 0.30), (None, 0.32, 0.31))[0] != 'reproduced'


def test_fails_reproduced_by_a_collapse():
    v, why = rule('fails', (0.01, 0.015, 0.012), BASE)
    assert (v, why) == ('reproduced', '-29.8 AP, significantly below -3 AP')


def test_fails_not_reproduced():
    assert rule('fails', shifted((-0.01, 0.01, -0.005)), BASE) == (
        'not reproduced', 'every run trained; -0.2 AP against the reference')


def test_fails_inconclusive():
    # worse by more than 3 AP on average, but not significantly
    assert rule('fails', shifted((-0.10, 0.0, -0.05)), BASE) == ('inconclusive', '-5.0 AP')
    # one pair: no test, and no divergence
    assert rule('fails', (0.30,), (0.31,)) == ('inconclusive',
                                               '1 paired seed(s): too few for a test (it needs 2)')


# --- edge cases ---------------------------------------------------------------------------------

def test_floor_both_below_2_ap():
    low = (0.010, 0.011, 0.012)
    assert rule('beats', shifted((0.005, 0.006, 0.007), low), low) == (
        'inconclusive', 'both below 2 AP: neither has started to detect')
    assert rule('matches', low, low)[0] == 'inconclusive'
    # one side above the floor: ruled as usual; "fails" has no floor
    assert rule('beats', (0.03, 0.031, 0.032), low)[0] == 'reproduced'
    assert rule('fails', (0.001, 0.001, 0.002), (0.019, 0.019, 0.018))[0] == 'not reproduced'


def test_fewer_than_two_paired_seeds():
    a, b = group(0.40, 0.41, None), group(None, 0.30, 0.31)  # only seed 1 is done on both sides
    c = compare(a, b)
    assert c['seeds'] == [1] and c['n'] == 1 and math.isnan(c['std'])
    assert math.isnan(c['p_greater']) and math.isnan(c['p_less'])
    for kind in ('beats', 'matches', 'fails'):
        assert verdict(kind, c) == ('inconclusive',
                                    '1 paired seed(s): too few for a test (it needs 2)')


def test_the_papers_protocol_rules_on_three_paired_seeds():
    """Issue 31 budgets 3 seeds for every comparison of the papers' protocol: 2 paired seeds,
    which the one-process study tests, leave it inconclusive there whatever they show, except
    runs of the claimed failure that diverged."""
    c = compare(group(0.52, 0.534), group(0.472, 0.477, 0.50))  # +5 AP on seeds 0 and 1
    assert verdict('beats', c)[0] == 'reproduced'
    for kind in ('beats', 'matches', 'fails'):
        assert verdict(kind, c, 3) == ('inconclusive',
                                       '2 paired seed(s): too few for a test (it needs 3)')
    diverged = compare(group(0.3, 0.3, None), group(0.3, 0.3, 0.3))
    assert verdict('fails', diverged, 3)[0] == 'reproduced'


def test_zero_spread_the_sign_decides():
    """The same difference on every seed: the t-test is undefined, the sign decides."""
    c = compare(group(0.35, 0.33, 0.36), group(0.30, 0.28, 0.31))  # d = +5 AP on every seed
    assert (c['p_greater'], c['p_less']) == (0.0, 1.0) and c['std'] == pytest.approx(0)
    assert verdict('beats', c) == ('reproduced', 'p = 0.000 < 0.05')
    same = compare(group(*BASE), group(*BASE))  # d = 0 on every seed: neither side
    assert (same['p_greater'], same['p_less']) == (1.0, 1.0)
    assert verdict('beats', same) == ('not reproduced', 'the measured difference is +0.0 AP')
    assert verdict('matches', same)[0] == 'reproduced'  # 0 is inside +-1 AP on every seed
    assert verdict('fails', same)[0] == 'not reproduced'


def test_t_tests_one_rule():
    """The reports' paired t-test and the claims' one-sample test are one test, and NaN with
    fewer than two values."""
    t, p = t_test([0.02, 0.03, 0.01], 'greater')
    assert paired_t_test([0.32, 0.35, 0.32], [0.30, 0.32, 0.31]) == pytest.approx((t, p, 3))
    assert t == pytest.approx(2 * math.sqrt(3))
    assert paired_t_test([0.35, 0.33], [0.30, 0.28])[1:] == (0.0, 2)
    assert t_test([0.04, 0.04], 'less', 0.05) == (-math.inf, 0.0)
    assert t_test([0.05, 0.05], 'greater', 0.05)[1] == 1.0
    assert all(math.isnan(v) for v in t_test([0.1], 'greater'))
    assert mean_std([0.30, 0.32, 0.31]) == pytest.approx((0.31, 0.01))
    assert math.isnan(mean_std([0.3])[1]) and all(map(math.isnan, mean_std([])))


# --- the plan and the claims --------------------------------------------------------------------

def test_every_claim_compares_cells_the_plan_trains():
    """Each (part, norm, batch) a claim compares is a cell of the full plan's parts that train
    by default (not the optional ones), and every claim has its comparisons with them."""
    plan = [p for p in plans(epochs_of(DEFAULT_EPOCHS))['full'] if not p.optional]
    cells = {(p.name, norm, batch) for p in plan for norm, batch, _ in p.runs()}
    ruled = claims_for({p.name for p in plan})
    assert [cid for cid, _, _ in ruled] == ['mabn', 'frn', 'dnb', 'dnc', 'rbn', 'dn_ablation']
    rows = [row for _, _, rows in ruled for row in rows]
    assert len(rows) == 28 and all(rows for _, _, rows in ruled)
    for label, kind, a, b, task in rows:
        assert a in cells and b in cells, label
        assert kind in ('beats', 'matches', 'fails') and task in ('bbox', 'segm')


def test_claims_of_the_parts_with_runs_only():
    ruled = dict((cid, rows) for cid, _, rows in claims_for({'ssdlite'}))
    assert {a[0] for rows in ruled.values() for _, _, a, b, _ in rows} == {'ssdlite'}
    assert 'dn_ablation' not in ruled and len(ruled['mabn']) == 2  # SSDLite's, within the part
    assert len(ruled['dnb']) == 2  # not the LR parts'
    assert all(rows == [] for _, _, rows in claims_for({'smoke'}))


# --- the papers' protocol: both variants of the benchmark ---------------------------------------

def test_papers_claims_compare_cells_the_plan_trains_on_both_variants():
    """Every comparison of the papers' protocol names cells of the plan's optional papers parts,
    on the benchmark and on its second variant, differing only in the variant."""
    plan = plans(epochs_of(DEFAULT_EPOCHS))['full']
    cells = {(p.name, norm, batch) for p in plan for norm, batch, _ in p.runs()}
    ruled = papers_claims_for({p.name for p in plan})
    assert [cid for cid, _, _ in ruled] == ['papers_mabn', 'papers_frn', 'papers_dnb',
                                            'papers_dnc', 'papers_rbn']
    rows = [row for _, _, rows in ruled for row in rows]
    # per detector: MABN 2 (x2 tasks on Mask R-CNN), FRN 2, DN-B 1, DN-C 1, RBN 1; + DN-B at 1x16
    assert len(rows) == 3 * 7 + 2 + 1
    for label, kind, a, b, task, (a2, b2) in rows:
        assert {a, b, a2, b2} <= cells, label
        assert (a2[0], b2[0]) == (a[0] + '_b', b[0] + '_b') and (a2[1:], b2[1:]) == (a[1:], b[1:])
    ref = [r for r in rows if r[1] == 'matches']
    assert {r[3] for r in ref} == {(papers_ref(d), 'BN', 16) for d in
                                   ('ssdlite', 'retinanet', 'mask_rcnn')}
    assert papers_claims_for({'ssdlite'}) == []


def test_papers_parts_share_one_total_batch_and_recipe():
    """8 processes of 2 against the reference's 1 process of 16: the same total batch, epochs and
    options (recipe and data variant) on each detector and variant."""
    parts = {p.name: p for p in plans(epochs_of(DEFAULT_EPOCHS))['full']}
    for det in ('ssdlite', 'retinanet', 'mask_rcnn'):
        for v in ('', '_b'):
            small, ref = parts[papers(det, v)], parts[papers_ref(det, v)]
            assert small.gpus * small.batch[0] == ref.gpus * ref.batch[0] == 16
            assert (small.epochs, small.options) == (ref.epochs, ref.options)
            assert ('synthetic_data=benchmark_b' in small.options) == (v == '_b')
            assert len(small.seeds) >= 3 and set(small.seeds) <= set(ref.seeds)
    assert len(parts[papers_ref('ssdlite')].seeds) >= 5
    for name in ('curve_1x16', 'curve_4x4', 'curve_16x1'):
        assert parts[name].gpus * parts[name].batch[0] == 16
        assert parts[name].options == parts[papers('ssdlite')].options


@pytest.mark.parametrize('first, second, n, want', [
    ('reproduced', 'reproduced', 3, 'reproduced'),
    ('reproduced', 'inconclusive', 3, 'inconclusive'),
    ('reproduced', 'not reproduced', 3, 'not reproduced'),
    ('not reproduced', 'reproduced', 3, 'not reproduced'),
    ('inconclusive', 'inconclusive', 3, 'inconclusive'),
    ('reproduced', 'inconclusive', 0, 'inconclusive'),
])
def test_a_claim_is_reproduced_only_on_both_variants(first, second, n, want):
    v, why = combine((first, 'a'), (second, 'b'), n)
    assert v == want
    assert ('no seed trained on both sides yet' in why) == (n == 0)


def test_rule_claims_rules_the_papers_protocol_on_both_variants():
    """RBN beats BN by 2 AP on the benchmark: reproduced there, but the claim stays inconclusive
    until the second variant agrees, and is not reproduced when it does not."""
    def runs(part, norm, batch, aps):
        return [dict(r, part=part) for r in group(*aps, norm=norm, batch=batch).values()]

    part, b = papers('ssdlite'), papers('ssdlite', '_b')
    base = {part: runs(part, 'BN', 2, BASE) + runs(part, 'RBN', 2, shifted((0.02, 0.021, 0.019)))}
    rbn = lambda pr: next(r for c in rule_claims(pr) if c['id'] == 'papers_rbn'  # noqa: E731
                          for r in c['rows'])
    r = rbn(base)
    assert r['verdict_a'][0] == 'reproduced' and r['verdict'][0] == 'inconclusive'
    worse = dict(base, **{b: runs(b, 'BN', 2, BASE) + runs(b, 'RBN', 2, shifted((-.02,) * 3))})
    assert rbn(worse)['verdict'][0] == 'not reproduced'
    same = dict(base, **{b: runs(b, 'BN', 2, BASE) + runs(b, 'RBN', 2, shifted((.01, .02, .015)))})
    assert rbn(same)['verdict'][0] == 'reproduced'


def test_advice_names_the_best_norm_and_those_within_noise():
    """The opening screen's rule: the highest mean AP at 8 x 2 over both variants; a norm is as
    good within noise unless it is significantly worse on either variant."""
    from normdet.study.advice import advice, advice_markdown, curve_points

    def cell(part, norm, aps, batch=2):
        return {(part, norm, batch): group(*aps, norm=norm, batch=batch)}
    a, b = papers('ssdlite'), papers('ssdlite', '_b')
    table = {**cell(a, 'BN', BASE), **cell(a, 'DNB', shifted((.03, .031, .029))),
             **cell(a, 'GN', shifted((.02, .04, .03))),  # noisy: not significantly below DN-B
             **cell(a, 'FRN', shifted((-.1, -.1, -.09))),
             **cell(papers_ref('ssdlite'), 'BN', shifted((.05,) * 3), batch=16)}
    (row,) = advice(table)
    assert (row['detector'], row['best'], row['tied'], row['variants']) == (
        'SSDLite', 'DNB', ['GN'], [''])
    assert len(row['ap']['']) == 3 and row['ref'][''] == pytest.approx([.35, .37, .36])
    assert row['missing'] == ['MABN', 'DNC', 'RBN']  # no advice until every norm has 2 seeds
    assert '| SSDLite | not yet (MABN, DNC, RBN: fewer than 2 seeds) | best so far DNB: ' in \
        '\n'.join(advice_markdown([row]))
    assert row['seeds'] == 0 and row['score']['GN'] == pytest.approx(.34)
    md = '\n'.join(advice_markdown([dict(row, missing=[], seeds=3)], 'study/x.png'))
    assert '| SSDLite | **DNB** | 34.0 ± 1.1 (benchmark only) | GN (34.0) |' in md
    assert 'x.png' in md
    assert 'provisional' not in md
    # fewer seeds than the plan trains: the norm is named, as provisional, and the screen says
    # what a paired t-test on so few seeds can tell
    md = '\n'.join(advice_markdown([dict(row, missing=[], seeds=2)]))
    assert '| SSDLite | **DNB** (provisional: 2 of 3 seeds) | 34.0 ± 1.1' in md
    assert 'one on 2 seeds' in md
    # the second variant: GN is significantly worse there, so no longer as good; but only once
    # every norm has 2 seeds there (one begun with BN alone would rank BN first)
    table.update({**cell(b, 'DNB', BASE), **cell(b, 'GN', shifted((-.02, -.021, -.019)))})
    assert (advice(table)[0]['tied'], advice(table)[0]['variants']) == (['GN'], [''])
    from normdet.study.plan import PAPERS_NORMS
    table.update({k: v for n in PAPERS_NORMS if n not in ('DNB', 'GN')
                  for k, v in cell(b, n, shifted((-.05, -.05, -.05))).items()})
    assert (advice(table)[0]['tied'], advice(table)[0]['variants']) == ([], ['', '_b'])
    assert advice({}) == [] and 'not measured yet' in advice_markdown([])[0]
    assert curve_points({k: v for k, v in table.items() if k[0] != a}) == {}  # points, no curve
    assert curve_points(table) == {'BN': [(16, pytest.approx([.35, .37, .36])),
                                          (2, list(BASE))],
                                   'DNB': [(2, pytest.approx(list(shifted((.03, .031, .029)))))],
                                   'GN': [(2, pytest.approx(list(shifted((.02, .04, .03)))))]}


def test_ablations_compare_cells_the_plan_trains():
    """Each ablation changes one thing of a cell the papers' parts train, and is ruled only where
    both sides have runs."""
    from normdet.study.claims import ablation_claims_for
    plan = plans(epochs_of(DEFAULT_EPOCHS))['full']
    cells = {(p.name, norm, batch) for p in plan for norm, batch, _ in p.runs()}
    ruled = ablation_claims_for({p.name for p in plan})
    assert [cid for cid, _, _ in ruled] == ['ablation_mabn', 'ablation_cenconv', 'ablation_dnc',
                                            'ablation_dnc_input', 'ablation_gn']
    rows = [row for _, _, rows in ruled for row in rows]
    assert len(rows) == 6 + 2 + 3 + 2 + 4
    parts = {p.name: p for p in plan}
    for label, kind, a, b, task in rows:
        assert {a, b} <= cells, label
        pa, pb = parts[a[0]], parts[b[0]]  # same detector, layout, epochs; options differ by one
        assert (pa.detector, pa.gpus, pa.epochs, a[2]) == (pb.detector, pb.gpus, pb.epochs, b[2])
        assert a[1] == b[1] or kind == 'fails', label  # 'fails': against BN
        oa, ob = (dict(o.split('=') for o in p.options) for p in (pa, pb))
        assert len({k for k in {**oa, **ob} if oa.get(k) != ob.get(k)}) == 1, label
    assert ablation_claims_for({'ablation_dnc_literal'}) == []
    assert ablation_claims_for({'ablation_dnc_normalized_b', 'papers_ssdlite'}) == []
    # both directions read as sentences, the detector first
    assert [r[0] for r in rows if 'SC' in r[0]] == [
        'SSDLite: DN-C (literal SC) does not train normally (vs BN)',
        'SSDLite: DN-C, residual SC beats literal SC',
        'SSDLite: DN-C, literal SC beats residual SC',
        'SSDLite (second variant): DN-C, normalized SC input beats raw SC input',
        'SSDLite (second variant): DN-C, raw SC input beats normalized SC input']
    assert all(r[0].startswith(('SSDLite', 'RetinaNet')) for r in rows)


def papers_ssdlite_part():
    return next(p for p in papers_parts() if p.name == papers('ssdlite'))


def test_the_cost_line_says_which_runs_count_only_their_last_attempt(tmp_path):
    from normdet.study.results import _completeness
    from normdet.study.runs import read_run
    runs = []
    for name, extra in (('fresh', []), ('resumed', ['--resume'])):
        d = tmp_path / name
        d.mkdir()
        (d / 'sweep_run.json').write_text(json.dumps(dict(
            detector='mini/ssdlite', norm='BN', batch=2, gpus=8, seed=0, status='done',
            wall_s=600., cpu_s=1200., command=['train.py', 'c.py', *extra])))
        runs.append(read_run(str(d)))
    assert [r['resumed'] for r in runs] == [False, True]
    plan = papers_ssdlite_part()
    text = '\n'.join(_completeness([plan], {plan.name: runs}))
    assert ('recorded for 2 of them: 0.7 h; 1 of them resumed after an interruption, and counts '
            'only its last attempt.') in text
    # the papers' parts are optional: the head counts them apart from the plan's own runs
    assert '**Of the optional parts, 0 of 21 runs have finished**' in text  # no metrics
    done = [dict(status='done', wall_s=600.)] * 2
    assert '**Of the optional parts, 2 of 21 runs have finished**' in '\n'.join(
        _completeness([plan], {plan.name: done}))
    assert 'resumed' not in '\n'.join(_completeness([plan], {plan.name: runs[:1]}))


def test_a_part_trains_every_cell_s_first_seed_before_any_second():
    part = papers_ssdlite_part()
    runs = part.runs()
    cells = len(part.norms) * len(part.batch)
    assert len(runs) == cells * len(part.seeds) and len(set(runs)) == len(runs)
    assert [s for _, _, s in runs] == sorted(s for _, _, s in runs)  # seed by seed
    assert {(n, b) for n, b, _ in runs[:cells]} == {(n, b) for n in part.norms for b in part.batch}


def test_when_an_ssd_run_leaves_the_plateau():
    """The plateau is the loss of background at 0.75 and the classes alike (3.636 for 4
    classes); a run leaves it at the first logged iteration 0.02 below it; other detectors have
    no such plateau."""
    from normdet.study.results import _plateau
    from normdet.study.runs import left_plateau, ssd_plateau
    assert ssd_plateau(4) == pytest.approx(math.log(16) + 3 * math.log(4 / 3))
    assert ssd_plateau(80) == pytest.approx(-math.log(0.25 / 80) - 3 * math.log(0.75))

    def run(*losses, detector='SSD MobileNetV2', classes=4, status='done'):
        return dict(detector=detector, num_classes=classes, status=status,
                    curves=[dict(iter=16 * (i + 1), loss=v + 1, loss_cls=v)
                            for i, v in enumerate(losses)])
    assert left_plateau(run(7.1, 3.64, 3.62, 3.60, 3.2)) == 64  # 3.62 is within 0.02
    assert left_plateau(run(7.1, 3.64, 3.63)) == 'never'
    assert left_plateau(run(7.1, 3.64, 3.63, classes=8)) == 32  # its plateau is 4.33
    assert left_plateau(run(1.2, 0.5, detector='RetinaNet ResNet18')) is None
    assert left_plateau(run(1.2, 0.5, classes=None)) is None
    assert _plateau([run(7, 3.5), run(7, 3.7, 3.5), run(7, 3.7), run(7, 3.5, status='diverged')]
                    ) == '32-48; 1 never'
    assert _plateau([run(7, 3.7, 3.5)]) == '48'
    assert _plateau([run(7, 3.7)]) == '1 never'
    assert _plateau([run(1.0, detector='RetinaNet ResNet18')]) == '-'
