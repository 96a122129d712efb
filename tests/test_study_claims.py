"""The verdict rules of normdet.study.claims, one test per rule and edge case, on records built
by hand (shaped as normdet.study.runs collects them); the claims compare cells of the plan; the
t-tests' rule for no spread. No training, no OpenMMLab."""
import math

import pytest

from normdet.study.claims import claims_for, compare, verdict
from normdet.study.plan import DEFAULT_EPOCHS, epochs_of, plans
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
    assert rule('fails', (0.30,), (0.31,)) == ('inconclusive', '-1.0 AP')


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
    for kind in ('beats', 'matches'):
        assert verdict(kind, c) == ('inconclusive', '1 paired seed(s): too few for a test')


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
