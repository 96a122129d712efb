"""Evaluate a checkpoint with pycocotools and write the COCO report.

    python tools/test.py configs/ssdlite_dnb.py work_dirs/ssdlite_dnb/epoch_120.pth
        [--work-dir DIR] [--out results.pkl] [--show-dir DIR] [--cfg-options ...] [--launcher pytorch]

Writes WORK_DIR/coco_metrics.json (every metric, per-class AP) and WORK_DIR/coco_report.md
(model, norm, batch, checkpoint, dataset, metrics and per-class tables). Multi-GPU through
tools/dist_test.sh.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a detector checkpoint with normdet')
    p.add_argument('config', help='config file the checkpoint was trained with')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='where the log and the report go')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--show-dir', help='draw the predictions into WORK_DIR/SHOW_DIR')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. data_root=/data/coco/')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'checkpoint {args.checkpoint!r} not found')
    import normdet  # noqa: F401
    from mmengine.dist import is_main_process
    from normdet.apis import build_runner, evaluate, load_config, summary_line

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
    metrics, (json_path, md_path) = evaluate(runner, checkpoint=args.checkpoint)
    if is_main_process():
        print(f'\n[normdet] {summary_line(metrics)}\n[normdet] report: {md_path}\n'
              f'[normdet] metrics: {json_path}', flush=True)


if __name__ == '__main__':
    from normdet.errors import ConfigError, DataError
    try:
        main()
    except (ConfigError, DataError) as e:  # the message names the problem and the fix
        sys.exit(f'[normdet] error: {e}')
