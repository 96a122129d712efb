"""The study's statistics, in one place: means and sample standard deviations over seeds
(``statistics``) and the one-sided t-tests (``scipy.stats``) of the reports and the claims.

One rule for differences with no spread (every seed gives the same difference, within 1e-12):
the t-test is undefined there (scipy gives t = +-inf, or NaN when the difference is 0), so the
sign decides: p = 0 when the difference lies on the alternative's side of ``popmean``, else 1
(a difference of exactly ``popmean`` supports neither side: p = 1 both ways). With fewer than two
values there is no test: p = NaN.
"""
import math
import statistics

NAN = float('nan')
NO_SPREAD = 1e-12


def mean_std(values) -> tuple:
    """(mean, sample standard deviation) of ``values``; NaN for what is undefined (no values:
    both; one value: the standard deviation)."""
    values = list(values)
    if not values:
        return NAN, NAN
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values, mean) if len(values) > 1 else NAN)


def t_test(d, alternative: str, popmean: float = 0.0) -> tuple:
    """One-sided one-sample t-test of H1: mean(d) > popmean (``alternative='greater'``) or
    < popmean (``'less'``), as ``scipy.stats.ttest_1samp``; returns (t, p). With no spread, the
    sign decides (the module's rule); with fewer than two values, (NaN, NaN)."""
    d = list(d)
    if len(d) < 2:
        return NAN, NAN
    if all(abs(x - d[0]) < NO_SPREAD for x in d):
        diff = d[0] - popmean
        t = math.copysign(math.inf, diff) if diff else NAN
        return t, (0.0 if (diff > 0 if alternative == 'greater' else diff < 0) else 1.0)
    from scipy import stats
    result = stats.ttest_1samp(d, popmean, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def paired_t_test(a, b) -> tuple:
    """One-sided paired t-test of H1: mean(a - b) > 0 (the t-test of the differences, as
    ``scipy.stats.ttest_rel``); returns (t, p, number of pairs)."""
    return (*t_test([x - y for x, y in zip(a, b)], 'greater'), len(a))
