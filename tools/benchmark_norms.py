"""Time every normalization layer next to nn.BatchNorm2d and nn.GroupNorm, in the same run.

    python tools/benchmark_norms.py [--device cuda|cpu] [--dtypes fp32 bf16]
        [--layouts nchw channels_last] [--shapes 2,256,200,336 ...] [--quick] [--out bench.json]

For each shape (default: shapes from the three detectors), dtype and memory layout it measures the
forward and forward+backward time of BN, GN, FRN+TLU, MABN, DN-B, DN-C and RBN in training mode
(CUDA events after warm-up on a GPU, perf_counter on CPU), in --repeats repeats of --iters calls
with the layers interleaved in each repeat, and prints min / median / max over the repeats of
- each time, and its ratio to nn.BatchNorm2d in the same repeat (cuDNN on a GPU),
and, at the median,
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

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_torch  # noqa: E402

require_torch()  # the layers timed here are plain PyTorch
import torch  # noqa: E402

from normdet.cli.args import positive_int  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402

DETECTOR_SHAPES = [(2, 256, 200, 336), (2, 64, 400, 672), (24, 96, 160, 160), (24, 1280, 10, 10)]
QUICK_SHAPES = [(2, 32, 24, 32), (4, 64, 8, 8)]
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16)


def layers(c):
    """Every norm of the table (normdet.norms) as its configs build it; SyncBN is BN in one
    process and is left out."""
    from normdet.norms import NORMS
    return {name: spec.build(c) for name, spec in NORMS.items() if spec.sync != 'always'}


def timer(device):
    """``run(fn, iters)``: seconds per call of ``fn`` averaged over ``iters`` calls (CUDA events
    on a GPU, perf_counter on the CPU)."""
    if device.type == 'cuda':
        def run(fn, iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / iters
    else:
        def run(fn, iters):
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            return (time.perf_counter() - t) / iters
    return run


def copy_bandwidth(device, run, iters) -> float:
    """Bytes per second of a large device copy (read + write), the floor's yardstick."""
    n = 64 * 2 ** 20 if device.type == 'cuda' else 16 * 2 ** 20
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    run(lambda: b.copy_(a), 3)
    return 2 * a.numel() * a.element_size() / min(run(lambda: b.copy_(a), 3) for _ in range(iters))


def spread(values) -> dict:
    return dict(min=min(values), median=statistics.median(values), max=max(values))


def bench_shape(layers_, x, dy, run, iters, repeats, device):
    """Per layer: forward and forward+backward seconds per call over ``repeats`` repeats of
    ``iters`` calls, the layers interleaved within each repeat (so a busy machine slows all of
    them alike), and the ratio to BN of each repeat; CUDA peak memory of forward+backward."""
    def fwd(layer):
        return lambda: layer(x)

    def fwd_bwd(layer):
        def f():
            x.grad = None
            layer(x).backward(dy)
        return f
    out, ok = {}, {}
    for name, layer in layers_.items():
        try:  # warm-up (and MABN's counter past its first iterations)
            run(fwd_bwd(layer), 3)
            with torch.no_grad():
                run(fwd(layer), 2)
            ok[name] = layer
        except Exception as e:  # a layer/dtype the device does not support
            out[name] = e
    times = {name: dict(fwd=[], fwd_bwd=[]) for name in ok}
    peak = {}
    for _ in range(repeats):
        for name, layer in ok.items():
            if device.type == 'cuda':
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            times[name]['fwd_bwd'].append(run(fwd_bwd(layer), iters))
            if device.type == 'cuda':
                peak[name] = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
            with torch.no_grad():
                times[name]['fwd'].append(run(fwd(layer), iters))
    for name, t in times.items():
        out[name] = dict(t, peak_mb=peak.get(name))
    return out


def benchmark(device, dtypes, layouts, shapes, iters, repeats):
    run = timer(device)
    bandwidth = copy_bandwidth(device, run, repeats)
    rows = []
    for shape in shapes:
        for dname in dtypes:
            for layout in layouts:
                fmt = torch.channels_last if layout == 'channels_last' else torch.contiguous_format
                x = torch.randn(shape, device=device).to(DTYPES[dname], memory_format=fmt)
                x.requires_grad_()
                dy = torch.randn_like(x)
                nbytes = x.numel() * x.element_size()
                built = {n: m.to(device).train() for n, m in layers(shape[1]).items()}
                results = bench_shape(built, x, dy, run, iters, repeats, device)
                bn = results['BN']
                for name, r in results.items():
                    row = dict(layer=name, shape=list(shape), dtype=dname, layout=layout)
                    if isinstance(r, Exception):
                        row['error'] = f'{type(r).__name__}: {r}'[:200]
                        rows.append(row)
                        continue
                    f, fb = spread(r['fwd']), spread(r['fwd_bwd'])
                    row.update(fwd_ms={k: 1e3 * v for k, v in f.items()},
                               fwd_bwd_ms={k: 1e3 * v for k, v in fb.items()},
                               peak_mb=r['peak_mb'],
                               floor_fraction_fwd_bwd=5 * nbytes / bandwidth / fb['median'],
                               floor_fraction_fwd=2 * nbytes / bandwidth / f['median'])
                    if not isinstance(bn, Exception):
                        row['ratio_to_bn_fwd_bwd'] = spread(
                            [a / b for a, b in zip(r['fwd_bwd'], bn['fwd_bwd'])])
                        row['ratio_to_bn_fwd'] = spread([a / b for a, b in zip(r['fwd'],
                                                                                bn['fwd'])])
                    rows.append(row)
    return dict(device=describe(device), bandwidth_gb_s=bandwidth / 1e9, iters=iters,
                repeats=repeats, threads=torch.get_num_threads(), torch=torch.__version__,
                date=time.strftime('%Y-%m-%d %H:%M'), rows=rows)


def describe(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({torch.get_num_threads()} threads)'


def _mmm(d, fmt='{:.3f}') -> str:
    return ' / '.join(fmt.format(d[k]) for k in ('min', 'median', 'max'))


def table(result) -> str:
    head = ('layer', 'shape', 'dtype', 'layout', 'fwd ms (min / med / max)',
            'fwd+bwd ms (min / med / max)', 'x BN f+b (min / med / max)', '% floor (f+b)',
            'peak MB')
    lines = [f"{result['device']}, copy bandwidth {result['bandwidth_gb_s']:.1f} GB/s, "
             f"{result['repeats']} interleaved repeats of {result['iters']} calls, torch "
             f"{result['torch']}, {result['date']}",
             '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for r in result['rows']:
        cells = [r['layer'], 'x'.join(map(str, r['shape'])), r['dtype'], r['layout']]
        if 'error' in r:
            cells += ['error: ' + r['error'], '', '', '', '']
        else:
            ratio = r.get('ratio_to_bn_fwd_bwd')
            cells += [_mmm(r['fwd_ms']), _mmm(r['fwd_bwd_ms']),
                      _mmm(ratio, '{:.2f}') if ratio else '-',
                      f"{100 * r['floor_fraction_fwd_bwd']:.0f}",
                      '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_shapes(specs) -> list:
    """``--shapes`` 'N,C,H,W' strings as tuples of ints (ConfigError naming the form if not)."""
    try:
        return [tuple(int(v) for v in spec.split(',')) for spec in specs]
    except ValueError:
        raise ConfigError(f'--shapes {" ".join(specs)}: give N,C,H,W, e.g. '
                          '2,256,200,336') from None


def main(argv=None):
    # flags never abbreviated, as normdet.cli.args.parse_tool_args has them; this tool times plain
    # PyTorch layers and runs without the OpenMMLab stack
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], allow_abbrev=False)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=list(DTYPES))
    p.add_argument('--layouts', nargs='+', default=['nchw', 'channels_last'],
                   choices=['nchw', 'channels_last'])
    p.add_argument('--shapes', nargs='+', help='N,C,H,W ... (default: the detectors\' shapes)')
    p.add_argument('--quick', action='store_true',
                   help='tiny shapes, 2 repeats of 2 calls (a smoke run)')
    p.add_argument('--iters', type=positive_int, default=5, help='calls per timed repeat')
    p.add_argument('--repeats', type=positive_int, default=7, help='interleaved repeats (the spread)')
    p.add_argument('--out', help='write the results as JSON')
    args = p.parse_args(argv)
    shapes = (parse_shapes(args.shapes) if args.shapes
              else QUICK_SHAPES if args.quick else DETECTOR_SHAPES)
    result = benchmark(torch.device(args.device), args.dtypes, args.layouts, shapes,
                       2 if args.quick else args.iters, 2 if args.quick else args.repeats)
    print(table(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        from normdet.cli.run import run_tool
    except ImportError:  # no OpenMMLab stack: the layers alone are timed
        main()
    else:
        run_tool(main)
