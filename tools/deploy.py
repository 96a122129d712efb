"""Fold a trained detector's eval-mode norms into its convolutions for inference, check that the
outputs do not change, time both models, and save the folded weights.

    python tools/deploy.py configs/retinanet_r50_fpn_mabn.py work_dirs/.../epoch_24.pth \
        [--out folded.pth] [--iters 20] [--size 800 1333] [--device cuda]

BN, SyncBN, RBN and MABN fold (normdet.norms.fuse); FRN, GN and DN-B/DN-C cannot (input-dependent
statistics or affine) and stay. Load the result with normdet.openmmlab.deploy.load_folded(cfg, path).
The checkpoint must fit the config's model exactly (missing or unexpected keys are listed); the
training batch per GPU it records sizes MABN's buffers as in training.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import check_output, parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Fold norms into convolutions for inference')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='trained weights (default: freshly initialised, '
                   'useful only to measure speed)')
    p.add_argument('--out', help='where to save the folded weights (.pth)')
    p.add_argument('--iters', type=positive_int, default=10, help='timed forward passes per model')
    p.add_argument('--size', type=positive_int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    return parse_tool_args(p, argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def timed(fn, iters, device):
    import torch
    fn()  # warm-up
    times = []
    for _ in range(iters):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main(argv=None):
    args = parse_args(argv)
    import torch
    from normdet.cli.config import load_config
    from normdet.openmmlab import stack_fixes
    from normdet.openmmlab.deploy import build_model, fold_and_check, save_folded
    from normdet.openmmlab.engine.checkpoints import read_checkpoint

    if args.out:
        check_output('--out', args.out, args.checkpoint, args.config)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'--device {args.device}: no GPU is visible (no CUDA device or driver); '
                          'deploy on the CPU with --device cpu')
    options = dict(args.cfg_options or {})
    if args.checkpoint:
        if not osp.isfile(args.checkpoint):
            raise ConfigError(f'checkpoint {args.checkpoint!r} not found')
        stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
        trained = read_checkpoint(args.checkpoint, mmap=True).get('normdet') or {}
        if trained.get('batch_per_gpu') and 'train_dataloader.batch_size' not in options:
            options['train_dataloader.batch_size'] = trained['batch_per_gpu']
    cfg = load_config(args.config, options)
    model = build_model(cfg, args.checkpoint, args.device)
    x = torch.randn(1, 3, *args.size, device=args.device)
    before = timed(lambda: model._forward(x), args.iters, args.device)
    result = fold_and_check(model, x)
    after = timed(lambda: model._forward(x), args.iters, args.device)
    result.update(config=args.config, checkpoint=args.checkpoint, device=args.device,
                  input=list(args.size), median_s_before=before, median_s_after=after,
                  speedup=before / after)
    print(json.dumps(result, indent=2))
    if args.out:
        save_folded(model, cfg, args.out)
        print(f'[normdet] folded weights: {args.out}')


if __name__ == '__main__':
    run_tool(main)
