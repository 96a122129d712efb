"""Compare any set of training runs: one Markdown report with tables and PNG plots.

    python tools/report.py work_dirs/sweep_ssdlite [more work dirs...] [--out DIR] [--baseline BN]

Reads each run's coco_metrics.json, sweep_run.json and MMEngine scalars log (a folder, or the
run folders directly under it); writes OUT/report.md, OUT/study.json and the plots: AP per norm
and batch (mean ± std over seeds), AP vs images per GPU, training loss and LR curves. p-values:
one-sided paired t-test against the baseline norm over seeds; diverged runs are flagged.
"""
import argparse
import os.path as osp
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description='Report comparing normdet runs')
    p.add_argument('work_dirs', nargs='+')
    p.add_argument('--out', help='output folder (default: WORK_DIR/report for the first one)')
    p.add_argument('--baseline', default='BN', help='norm the others are tested against')
    args = p.parse_args(argv)
    from normdet.study import write_study
    out = args.out or osp.join(args.work_dirs[0], 'report')
    try:
        path = write_study(args.work_dirs, out, args.baseline)
    except FileNotFoundError as e:
        sys.exit(f'[normdet] error: {e}')
    print(f'[normdet] report: {path}')
    return path


if __name__ == '__main__':
    main()
