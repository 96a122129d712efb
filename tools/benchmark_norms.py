"""Time every normalization layer next to nn.BatchNorm2d and nn.GroupNorm, in the same run.

    python tools/benchmark_norms.py [--device cuda|cpu] [--dtypes fp32 bf16]
        [--layouts nchw channels_last] [--shapes 2,256,200,336 ...] [--quick] [--out bench.json]

For each shape (default: shapes from the three detectors), dtype and memory layout it measures the
median forward and forward+backward time of BN, GN, FRN+TLU, MABN, DN-B, DN-C and RBN in training
mode (CUDA events after warm-up on a GPU, perf_counter on CPU), and prints them with
- the ratio to nn.BatchNorm2d measured in the same run (cuDNN on a GPU),
- the fraction of the memory-traffic floor reached: forward+backward moves at least 5 tensors of
  the input's size (read x, write y, read x and dy, write dx), forward 2; the device's bandwidth
  is measured in the same run with a large copy,
- the peak memory the layer's forward+backward allocates (CUDA only).
No assertion: the numbers are for reading; the JSON (--out) keeps them.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
import normdet  # noqa: E402,F401  (the layers timed here are plain PyTorch)
from normdet.errors import ConfigError  # noqa: E402

DETECTOR_SHAPES = [(2, 256, 200, 336), (2, 64, 400, 672), (24, 96, 160, 160), (24, 1280, 10, 10)]
QUICK_SHAPES = [(2, 32, 24, 32), (4, 64, 8, 8)]
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16)


def layers(c):
    """Every norm of the table (normdet.norms) as its configs build it; SyncBN is BN in one
    process and is left out."""
    from normdet.norms import NORMS
    return {name: spec.build(c) for name, spec in NORMS.items() if spec.sync != 'always'}


def timer(device):
    if device.type == 'cuda':
        def run(fn, iters):
            times = []
            for _ in range(iters):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            return statistics.median(times)
    else:
        def run(fn, iters):
            times = []
            for _ in range(iters):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)
    return run


def copy_bandwidth(device, run, iters) -> float:
    """Bytes per second of a large device copy (read + write), the floor's yardstick."""
    n = 64 * 2 ** 20 if device.type == 'cuda' else 16 * 2 ** 20
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    run(lambda: b.copy_(a), 3)
    return 2 * a.numel() * a.element_size() / run(lambda: b.copy_(a), iters)


def bench_one(layer, x, dy, run, iters, device):
    def fwd():
        layer(x)

    def fwd_bwd():
        x.grad = None
        layer(x).backward(dy)
    for fn in (fwd, fwd_bwd):  # warm-up (and MABN's counter past its first iterations)
        run(fn, 3)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t_fb = run(fwd_bwd, iters)
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == 'cuda' else None
    with torch.no_grad():
        t_f = run(fwd, iters)
    return t_f, t_fb, peak


def benchmark(device, dtypes, layouts, shapes, iters):
    run = timer(device)
    bandwidth = copy_bandwidth(device, run, iters)
    rows = []
    for shape in shapes:
        for dname in dtypes:
            for layout in layouts:
                fmt = torch.channels_last if layout == 'channels_last' else torch.contiguous_format
                x = torch.randn(shape, device=device).to(DTYPES[dname], memory_format=fmt)
                x.requires_grad_()
                dy = torch.randn_like(x)
                nbytes = x.numel() * x.element_size()
                results = {}
                for name, layer in layers(shape[1]).items():
                    layer = layer.to(device).train()
                    try:
                        results[name] = bench_one(layer, x, dy, run, iters, device)
                    except Exception as e:  # a layer/dtype the device does not support
                        results[name] = e
                bn = results['BN']
                for name, r in results.items():
                    row = dict(layer=name, shape=list(shape), dtype=dname, layout=layout)
                    if isinstance(r, Exception):
                        row['error'] = f'{type(r).__name__}: {r}'[:200]
                    else:
                        t_f, t_fb, peak = r
                        row.update(fwd_ms=1e3 * t_f, fwd_bwd_ms=1e3 * t_fb, peak_mb=peak,
                                   floor_fraction_fwd_bwd=5 * nbytes / bandwidth / t_fb,
                                   floor_fraction_fwd=2 * nbytes / bandwidth / t_f)
                        if not isinstance(bn, Exception):
                            row.update(ratio_to_bn_fwd_bwd=t_fb / bn[1], ratio_to_bn_fwd=t_f / bn[0])
                    rows.append(row)
    return dict(device=describe(device), bandwidth_gb_s=bandwidth / 1e9, iters=iters,
                torch=torch.__version__, date=time.strftime('%Y-%m-%d %H:%M'), rows=rows)


def describe(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({torch.get_num_threads()} threads)'


def table(result) -> str:
    head = ('layer', 'shape', 'dtype', 'layout', 'fwd ms', 'fwd+bwd ms', 'x BN (f+b)',
            '% floor (f+b)', 'peak MB')
    lines = [f"{result['device']}, copy bandwidth {result['bandwidth_gb_s']:.1f} GB/s, "
             f"median of {result['iters']}, torch {result['torch']}, {result['date']}",
             '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for r in result['rows']:
        cells = [r['layer'], 'x'.join(map(str, r['shape'])), r['dtype'], r['layout']]
        if 'error' in r:
            cells += ['error: ' + r['error'], '', '', '', '']
        else:
            cells += [f"{r['fwd_ms']:.3f}", f"{r['fwd_bwd_ms']:.3f}",
                      f"{r.get('ratio_to_bn_fwd_bwd', float('nan')):.2f}",
                      f"{100 * r['floor_fraction_fwd_bwd']:.0f}",
                      '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    # as normdet.apis.parse_tool_args(config=False), which needs the OpenMMLab stack: this tool
    # times plain PyTorch layers and runs without it
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=list(DTYPES))
    p.add_argument('--layouts', nargs='+', default=['nchw', 'channels_last'],
                   choices=['nchw', 'channels_last'])
    p.add_argument('--shapes', nargs='+', help='N,C,H,W ... (default: the detectors\' shapes)')
    p.add_argument('--quick', action='store_true', help='tiny shapes, 3 iterations (a smoke run)')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--out', help='write the results as JSON')
    args = p.parse_args(argv)
    try:
        shapes = ([tuple(int(v) for v in s.split(',')) for s in args.shapes] if args.shapes
                  else QUICK_SHAPES if args.quick else DETECTOR_SHAPES)
    except ValueError:
        raise ConfigError(f'--shapes {" ".join(args.shapes)}: give N,C,H,W, e.g. '
                          '2,256,200,336') from None
    result = benchmark(torch.device(args.device), args.dtypes, args.layouts, shapes,
                       3 if args.quick else args.iters)
    print(table(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        from normdet.apis import run_tool
    except ImportError:  # no OpenMMLab stack: the layers alone are timed
        main()
    else:
        run_tool(main)
