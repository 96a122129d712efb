"""The norm study: which runs the papers' claims need, what each run was and gave, and the
verdicts and reports written from them. Plain Python (scipy for the t-tests, matplotlib for the
plots, both imported where used); no torch and no OpenMMLab: a run is read from the files it
left (MMEngine is imported, when installed, only to read the dumped config of a run with no
report).

- ``plan``: the parts of the study, each a grid of (norm, images per GPU, seed) runs
  (tools/study.py trains them);
- ``runs``: collecting run folders and telling what each run was;
- ``stats``: means, standard deviations and the one-sided t-tests;
- ``claims``: the papers' claims over the plan's cells and the rules of the verdicts;
- ``report``: the report of one set of runs (tools/report.py, tools/sweep.py, each part);
- ``results``: docs/results.md, the verdicts with the numbers behind them.
"""
from .claims import claims_for, compare, rule_claims, verdict
from .plan import Part, plans
from .report import aggregate, write_study
from .results import results_markdown, write_results
from .runs import collect, mark_duplicates, read_run
from .stats import mean_std, paired_t_test, t_test

__all__ = ['Part', 'plans', 'collect', 'read_run', 'mark_duplicates', 'mean_std', 't_test',
           'paired_t_test', 'claims_for', 'compare', 'verdict', 'rule_claims', 'aggregate',
           'write_study', 'results_markdown', 'write_results']
