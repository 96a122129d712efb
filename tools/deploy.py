"""Fold a trained detector's eval-mode norms into its convolutions for inference, check that the
outputs do not change, time both models, save the folded model, and export it to ONNX.

    python tools/deploy.py work_dirs/ssdlite_mabn/ssdlite_mabn.py work_dirs/.../epoch_120.pth \
        [--out OUT/folded.pth] [--onnx OUT/folded.onnx] [--tolerance 1e-3] \
        [--iters 20] [--size 320 320] [--device cuda] [--threads N]

BN, SyncBN, RBN, MABN and DN-C fold (normdet.norms.fuse); FRN, GN and DN-B cannot (their affine
depends on each input) and stay. --out writes the folded weights and, beside them, their config
(OUT/folded.py: the run's config with the model a NormDetFolded), which the tools and mmdet read
as they read a run's:

    python tools/test.py OUT/folded.py OUT/folded.pth      # the checkpoint's COCO numbers

--onnx exports the folded network without its post-processing (backbone, neck and head outputs,
mmdet's mode='tensor'; a two-stage detector's RoI heads on given RoIs; not the NMS: see
normdet.openmmlab.deploy) at --size, on the CPU, checks it with ONNX Runtime against PyTorch
(every output within --tolerance of its magnitude, or an error) and times both with the same
number of threads (median, min and max of --iters passes; ratio ONNX Runtime / PyTorch); docs/
deploy.md has the details. The checkpoint must fit the config's model
exactly (missing or unexpected keys are listed); the training batch per GPU it records sizes
MABN's buffers as in training.
"""
import argparse
import json
import os
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
    p = argparse.ArgumentParser(description='Fold norms into convolutions for inference, export '
                                            'to ONNX')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', help='trained weights (default: freshly initialised, '
                   'useful only to measure speed and check the export)')
    p.add_argument('--out', help='where to save the folded weights (.pth); their config goes '
                   'beside them (.py)')
    p.add_argument('--onnx', help='export the folded network to this .onnx file and check it '
                   'with ONNX Runtime')
    p.add_argument('--tolerance', type=float, default=1e-3,
                   help='largest ONNX Runtime - PyTorch difference accepted, relative to each '
                        "output's largest magnitude")
    p.add_argument('--iters', type=positive_int, default=10, help='timed forward passes per model')
    p.add_argument('--size', type=positive_int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    p.add_argument('--threads', type=positive_int,
                   help="CPU threads of PyTorch and of ONNX Runtime (default: PyTorch's own count)")
    return parse_tool_args(p, argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def timed(fn, iters, device='cpu') -> dict:
    """Seconds per call of ``fn`` over ``iters`` calls after one warm-up: median, min, max."""
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
    times.sort()
    return dict(median=times[len(times) // 2], min=times[0], max=times[-1])


def _ms(t: dict) -> str:
    return f"median {t['median'] * 1e3:.2f} ms (min {t['min'] * 1e3:.2f}, max {t['max'] * 1e3:.2f})"


def main(argv=None):
    args = parse_args(argv)
    import torch
    from normdet.cli.config import load_config
    from normdet.openmmlab import stack_fixes
    from normdet.openmmlab.deploy import (OPSET, TensorForward, build_model, check_onnx,
                                          export_onnx, fold_and_check, save_folded)
    from normdet.openmmlab.engine.checkpoints import read_checkpoint

    if args.out and not args.out.endswith('.pth'):
        raise ConfigError(f'--out {args.out}: the folded weights are a checkpoint, give a .pth '
                          'path (their config goes beside it, .py)')
    if args.onnx and not args.onnx.endswith('.onnx'):
        raise ConfigError(f'--onnx {args.onnx}: give a .onnx path')
    for flag, out in (('--out', args.out), ('--out', args.out and args.out[:-4] + '.py'),
                      ('--onnx', args.onnx)):
        if out:
            check_output(flag, out, args.checkpoint, args.config)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f'--device {args.device}: no GPU is visible (no CUDA device or driver); '
                          'deploy on the CPU with --device cpu')
    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(args.cfg_options or {})
    if args.checkpoint:
        stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
        trained = read_checkpoint(args.checkpoint, mmap=True).get('normdet') or {}
        if trained.get('batch_per_gpu') and 'train_dataloader.batch_size' not in options:
            options['train_dataloader.batch_size'] = trained['batch_per_gpu']
    cfg = load_config(args.config, options)
    model = build_model(cfg, args.checkpoint, args.device)
    net = TensorForward(model)
    inputs = net.example_inputs(torch.randn(1, 3, *args.size, device=args.device))
    with torch.no_grad():
        before = timed(lambda: net(*inputs), args.iters, args.device)
        result = fold_and_check(model, inputs[0])
        after = timed(lambda: net(*inputs), args.iters, args.device)
    result.update(config=args.config, checkpoint=args.checkpoint, device=args.device,
                  input=list(args.size), median_s_before=before['median'],
                  median_s_after=after['median'], speedup=before['median'] / after['median'])
    if args.onnx:
        net, inputs = net.cpu(), tuple(t.cpu() for t in inputs)
        os.makedirs(osp.dirname(osp.abspath(args.onnx)), exist_ok=True)
        export_onnx(net, inputs, args.onnx)
        check, run_onnx = check_onnx(net, inputs, args.onnx, args.tolerance)
        with torch.no_grad():
            torch_s = timed(lambda: net(*inputs), args.iters)
        onnx_s = timed(run_onnx, args.iters)
        result['onnx'] = dict(path=args.onnx, opset=OPSET, device='cpu',
                              threads=torch.get_num_threads(), **check, iters=args.iters,
                              pytorch_s=torch_s, onnxruntime_s=onnx_s,
                              ratio=onnx_s['median'] / torch_s['median'])
    print(json.dumps(result, indent=2))
    if args.onnx:
        o = result['onnx']
        print(f"[normdet] ONNX: {args.onnx}: {o['outputs']} outputs, max abs diff "
              f"{o['max_abs_diff']:.3g} from PyTorch ({o['max_rel_diff']:.3g} of the output's "
              f"magnitude, tolerance {args.tolerance:g})")
        print(f"[normdet] speed on the CPU ({o['threads']} thread(s) each), input "
              f"1x3x{args.size[0]}x{args.size[1]}, {args.iters} passes: PyTorch "
              f"{_ms(o['pytorch_s'])}, ONNX Runtime {_ms(o['onnxruntime_s'])}; ratio ONNX "
              f"Runtime / PyTorch {o['ratio']:.2f}")
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        config = save_folded(model.cpu(), cfg, args.out, args.checkpoint, result['replaced'] > 0)
        print(f'[normdet] folded model: {args.out} and its config {config} (evaluate: python '
              f'tools/test.py {config} {args.out})')


if __name__ == '__main__':
    run_tool(main)
