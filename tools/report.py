"""Compare any set of training runs: one Markdown report with tables and PNG plots.

    python tools/report.py work_dirs/sweep_ssdlite [more work dirs...] [--out DIR] [--baseline BN]

Reads each run (a folder, or the run folders directly under it): what it was (detector, dataset,
schedule, norm, images per GPU, seed) and its results from coco_metrics.json (for a run without
one, such as a run of mmdet's own train.py: what it was from the config its runner dumped, its
results from the last validation in its log), sweep_run.json and MMEngine's scalars log. Writes
OUT/report.md, OUT/study.json and the plots: AP, AP50 and AP75 per norm and batch (mean, ± std
where >= 2 seeds), the same vs images per GPU, training loss and LR curves. p-values: one-sided
paired t-test (normdet.study.stats) against the baseline norm over seeds. Diverged and failed
runs, duplicates and skipped folders are listed.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description='Report comparing normdet runs')
    p.add_argument('work_dirs', nargs='+')
    p.add_argument('--out', help='output folder (default: WORK_DIR/report for the first one)')
    p.add_argument('--baseline', default='BN', help='norm the others are tested against')
    args = parse_tool_args(p, argv, config=False)
    from normdet.study import write_study
    out = args.out or osp.join(args.work_dirs[0], 'report')
    path = write_study(args.work_dirs, out, args.baseline)
    print(f'[normdet] report: {path}')
    return path


if __name__ == '__main__':
    run_tool(main)
