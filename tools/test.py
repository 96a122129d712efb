"""Evaluate a checkpoint with pycocotools and write the COCO report.

    python tools/test.py configs/ssdlite_dnb.py work_dirs/ssdlite_dnb/epoch_120.pth
        [--work-dir DIR] [--out results.pkl] [--show-dir DIR] [--cfg-options ...] [--launcher pytorch]

Writes DIR/coco_metrics.json (every metric, per-class AP) and DIR/coco_report.md (model, norm,
batch, checkpoint, dataset, metrics and per-class tables), with the log. DIR defaults to a folder
beside the checkpoint named after it (work_dirs/ssdlite_dnb/epoch_120_test/), so evaluating an
older checkpoint never replaces the training run's report; a DIR that holds the report of another
checkpoint is refused. The checkpoint must fit the config's model exactly (missing or unexpected
keys are listed), and the training batch per GPU it records is used (MABN's buffers and the
report follow it). Multi-GPU through tools/dist_test.sh.
"""
import argparse
import os.path as osp

from normdet import stack_fixes
from normdet.apis import (build_runner, evaluate, evaluation_dir, load_config, parse_tool_args,
                          print_result, run_tool)
from normdet.checkpoints import read_checkpoint
from normdet.errors import ConfigError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a detector checkpoint with normdet')
    p.add_argument('config', help='config file the checkpoint was trained with')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='where the log and the report go (default: beside the '
                                      'checkpoint, CHECKPOINT_NAME_test/)')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--show-dir', help='draw the predictions into WORK_DIR/SHOW_DIR')
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--out {args.out}: the predictions are a pickle, give a .pkl path')
    stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
    trained = read_checkpoint(args.checkpoint, mmap=True).get('normdet') or {}
    options = dict(args.cfg_options or {})
    if trained.get('batch_per_gpu') and 'train_dataloader.batch_size' not in options:
        options['train_dataloader.batch_size'] = trained['batch_per_gpu']
    work_dir = evaluation_dir(args.checkpoint, args.work_dir)
    cfg = load_config(args.config, options, work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        vis = cfg.default_hooks.visualization
        vis.draw, vis.test_out_dir = True, args.show_dir
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=args.out)]

    runner = build_runner(cfg)
    print_result(*evaluate(runner, checkpoint=osp.abspath(args.checkpoint)))


if __name__ == '__main__':
    run_tool(main)
