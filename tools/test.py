"""Evaluate a checkpoint (COCO metrics: faster-coco-eval, or pycocotools) and write the report.

    python tools/test.py configs/ssdlite_dnb.py work_dirs/ssdlite_dnb/epoch_120.pth
        [--work-dir DIR] [--out results.pkl] [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options ...] [--launcher pytorch]

MMDetection's test flags: --show draws each image's predictions in a window (--wait-time seconds
each; needs a display), --show-dir saves them instead, --tta tests with the config's tta_model
and tta_pipeline (a horizontal flip for SSDLite and RetinaNet). Writes DIR/coco_metrics.json
(every metric, per-class AP) and DIR/coco_report.md (model, norm, batch, schedule, LR,
checkpoint, dataset, versions, metrics and per-class tables), with the log. DIR defaults to a
folder beside the checkpoint named after it (work_dirs/ssdlite_dnb/epoch_120_test/), so
evaluating an older checkpoint never replaces the training run's report; a DIR that holds the
report of another checkpoint is refused. The checkpoint must fit the config's model exactly
(missing or unexpected keys are listed), and the training batch per GPU it records is used
(MABN's buffers and the report follow it). Multi-GPU through tools/dist_test.sh.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import check_output, parse_tool_args  # noqa: E402
from normdet.cli.config import load_config  # noqa: E402
from normdet.cli.evaluate import evaluate, print_result  # noqa: E402
from normdet.cli.features import enable_tta, enable_visualization  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.cli.workdir import evaluation_dir, locked  # noqa: E402
from normdet.openmmlab import build_runner, stack_fixes  # noqa: E402
from normdet.openmmlab.engine.checkpoints import read_checkpoint  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Evaluate a detector checkpoint with normdet')
    p.add_argument('config', help='config file the checkpoint was trained with')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='where the log and the report go (default: beside the '
                                      'checkpoint, CHECKPOINT_NAME_test/)')
    p.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    p.add_argument('--show', action='store_true', help='show each image\'s predictions in a window')
    p.add_argument('--show-dir', help='draw the predictions into WORK_DIR/<timestamp>/SHOW_DIR')
    p.add_argument('--wait-time', type=float, default=2, help='seconds each --show window stays')
    p.add_argument('--tta', action='store_true',
                   help="test-time augmentation: the config's tta_model and tta_pipeline")
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--out {args.out}: the predictions are a pickle, give a .pkl path')
    if args.out:
        check_output('--out', args.out, args.checkpoint, args.config)
    stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
    trained = read_checkpoint(args.checkpoint, mmap=True).get('normdet') or {}
    options = dict(args.cfg_options or {})
    if trained.get('batch_per_gpu') and 'train_dataloader.batch_size' not in options:
        options['train_dataloader.batch_size'] = trained['batch_per_gpu']
    work_dir = evaluation_dir(args.checkpoint, args.work_dir)
    cfg = load_config(args.config, options, work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.wait_time, args.show_dir)
    if args.tta:
        enable_tta(cfg)
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=args.out)]

    with locked(work_dir):
        runner = build_runner(cfg)
        print_result(*evaluate(runner, checkpoint=osp.abspath(args.checkpoint)))


if __name__ == '__main__':
    run_tool(main)
