"""Train a detector, then evaluate it on the test split and write the COCO report.

    python tools/train.py configs/ssdlite_dnb.py [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher pytorch] [--no-eval]

MMDetection's flags and behaviour (work dir: --work-dir > config > work_dirs/<config name>);
multi-GPU through tools/dist_train.sh (torchrun). At the end the final weights are evaluated with
pycocotools and the report is written to WORK_DIR/coco_report.md and coco_metrics.json.
"""
import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a detector with normdet')
    p.add_argument('config', help='config file, e.g. configs/ssdlite_dnb.py')
    p.add_argument('--work-dir', help='where logs, checkpoints and the report go')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the LR with the total batch (normdet configs already do)')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help='resume from CKPT, or without CKPT from the latest in the work dir')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. data_root=/data/coco/ train_cfg.max_epochs=1')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--no-eval', action='store_true', help='skip the final evaluation and report')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    import normdet  # noqa: F401  (registers layers, runner, metric; stack fixes)
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.dist import is_main_process
    from normdet.apis import build_runner, evaluate, load_config, summary_line

    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            sys.exit('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not os.path.isfile(args.resume):
            sys.exit(f'--resume {args.resume}: no such checkpoint')
        cfg.resume, cfg.load_from = True, args.resume

    runner = build_runner(cfg)
    runner.train()
    if args.no_eval:
        return
    metrics, (json_path, md_path) = evaluate(runner, train_world_size=runner.world_size)
    if is_main_process():
        print(f'\n[normdet] {summary_line(metrics)}\n[normdet] report: {md_path}\n'
              f'[normdet] metrics: {json_path}', flush=True)


if __name__ == '__main__':
    from normdet.errors import ConfigError, DataError
    try:
        main()
    except (ConfigError, DataError) as e:  # the message names the problem and the fix
        sys.exit(f'[normdet] error: {e}')
