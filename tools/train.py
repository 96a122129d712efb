"""Train a detector, then evaluate it on the test split and write the COCO report.

    python tools/train.py configs/ssdlite_dnb.py [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--tensorboard] [--cfg-options KEY=VALUE ...] [--launcher pytorch]
        [--no-eval] [--overwrite]

MMDetection's flags and behaviour (work dir: --work-dir > config > work_dirs/<config name>);
multi-GPU through tools/dist_train.sh (torchrun). At the end the final weights are evaluated with
faster-coco-eval (or pycocotools) and the report is written to WORK_DIR/coco_report.md and
coco_metrics.json. --tensorboard also logs scalars and validation images for TensorBoard
(tensorboard --logdir WORK_DIR). A work dir that holds checkpoints is continued with --resume;
training into it without --resume is refused unless --overwrite says to start over there.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args  # noqa: E402
from normdet.cli.config import load_config  # noqa: E402
from normdet.cli.evaluate import evaluate, print_result  # noqa: E402
from normdet.cli.features import enable_tensorboard  # noqa: E402
from normdet.cli.curves import write_curves  # noqa: E402
from normdet.cli.run import is_main_process, run_tool  # noqa: E402
from normdet.cli.workdir import check_work_dir, locked  # noqa: E402
from normdet.openmmlab import build_runner  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a detector with normdet')
    p.add_argument('config', help='config file, e.g. configs/ssdlite_dnb.py')
    p.add_argument('--work-dir', help='where logs, checkpoints and the report go')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the LR with the total batch (normdet configs already do)')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or without CKPT from the latest in the work dir')
    p.add_argument('--no-eval', action='store_true', help='skip the final evaluation and report')
    p.add_argument('--tensorboard', action='store_true',
                   help='also log scalars and validation images for TensorBoard')
    p.add_argument('--overwrite', action='store_true',
                   help='train from the start into a work dir that holds checkpoints, replacing '
                        'them (without it: refused, use --resume or another --work-dir)')
    return parse_tool_args(p, argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdet.utils import setup_cache_size_limit_of_dynamo

    setup_cache_size_limit_of_dynamo()
    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise ConfigError('--amp (mixed precision) needs a GPU and none is visible; train '
                              'without --amp on the CPU (fp32), or on a machine with CUDA')
    if args.resume is not None and args.overwrite:
        raise ConfigError('--resume and --overwrite contradict each other: --resume continues '
                          'the run in the work dir, --overwrite starts it over; give one of them')
    if args.resume not in (None, 'auto') and not os.path.isfile(args.resume):
        raise ConfigError(f'--resume {args.resume}: no such checkpoint; --resume without a '
                          'path continues from the work dir\'s last checkpoint')
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in (cfg.get('auto_scale_lr') or {}):
            raise ConfigError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) in '
                              'the config (the total batch its LR is meant for)')
        cfg.auto_scale_lr.enable = True
    if args.tensorboard:
        enable_tensorboard(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    with locked(cfg.work_dir):  # no second run into it meanwhile
        check_work_dir(cfg.work_dir, bool(cfg.get('resume')), args.overwrite)
        runner = build_runner(cfg)
        runner.train()
        if is_main_process():
            curves = write_curves(cfg.work_dir, title=osp.basename(args.config))
            if curves:
                print(f'[normdet] loss and LR curves: {curves}', flush=True)
        if args.no_eval:
            return
        if args.tensorboard:  # images from validation only, not from every test image
            from mmdet.engine.hooks import DetVisualizationHook
            for hook in runner.hooks:
                if isinstance(hook, DetVisualizationHook):
                    hook.draw = False
        print_result(*evaluate(runner, train_world_size=runner.world_size))


if __name__ == '__main__':
    run_tool(main)
