"""Evaluate a checkpoint with pycocotools and write the COCO report.

    python tools/test.py configs/ssdlite_dnb.py work_dirs/ssdlite_dnb/epoch_120.pth
        [--work-dir DIR] [--out results.pkl] [--show-dir DIR] [--cfg-options ...] [--launcher pytorch]

Writes WORK_DIR/coco_metrics.json (every metric, per-class AP) and WORK_DIR/coco_report.md
(model, norm, batch, checkpoint, dataset, metrics and per-class tables). Multi-GPU through
tools/dist_test.sh.
"""
import argparse
import os.path as osp
import sys

from normdet.apis import (build_runner, evaluate, load_config, parse_tool_args, print_result,
                          run_tool)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a detector checkpoint with normdet')
    p.add_argument('config', help='config file the checkpoint was trained with')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='where the log and the report go')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--show-dir', help='draw the predictions into WORK_DIR/SHOW_DIR')
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'checkpoint {args.checkpoint!r} not found')

    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.default_hooks.visualization
        vis.draw, vis.test_out_dir = True, args.show_dir
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            sys.exit('--out must end with .pkl')
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=args.out)]

    runner = build_runner(cfg)
    print_result(*evaluate(runner, checkpoint=args.checkpoint))


if __name__ == '__main__':
    run_tool(main)
