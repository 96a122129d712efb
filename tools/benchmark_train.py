"""Time whole training iterations of detector configs, each against its BN config in the same run.

    python tools/benchmark_train.py configs/ssdlite_bn.py configs/ssdlite_dnb.py ...
        [--all] [--iters 5] [--repeats 5] [--device cpu|cuda] [--amp] [--out bench.json]
        [--layouts nchw channels_last] [--optimizers foreach fused] [--kernels torch triton]
        [--cfg-options train_dataloader.batch_size=8 ...]

For each config: the model and optimizer as training builds them, one batch from the config's own
train dataloader (so data loading is not timed: this measures the norms' cost), then
``model.train_step`` (preprocessing, forward, loss, backward, optimizer step) ``--iters`` times
per repeat, after warm-up. Repeats go round-robin over the configs, so a busy machine slows all of
them alike. Printed per config: images per second (min / median / max over the repeats), the
ratio of its median time per iteration to its detector's BN config (``--baseline``; measured in
the same run), and on CUDA the peak memory and its ratio to BN. ``--all`` times every config of
``configs/`` for each detector named on the command line (e.g. ``--all ssdlite``). ``--layouts``
times each config in each memory layout (a config's ``channels_last``), in the same round-robin:
ratios to BN in the same layout, and of channels_last to NCHW. ``--optimizers`` does the same for
the optimizer's implementation (torch's ``foreach`` multi-tensor step or its ``fused`` kernels):
ratios to BN with the same one, and of each to ``foreach``. ``--kernels`` does the same for the
layers' passes (``NORMDET_KERNELS``: ``triton``, the fused kernels, or ``torch``, the PyTorch
ops; ``auto`` takes the kernels on CUDA and the PyTorch ops on the CPU): ratios to BN with the
same one, and of each to ``torch``.
No assertion: the numbers are for reading; the JSON (--out) keeps them.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LAYOUTS = ('nchw', 'channels_last')
OPTIMIZERS = ('foreach', 'fused')  # torch.optim implementations: the flag each sets
KERNELS = ('auto', 'torch', 'triton')  # normdet.layers._affine.KERNELS


def parse_args(argv=None):
    from normdet.cli.args import parse_tool_args, positive_int
    p = argparse.ArgumentParser(description='Time training iterations, as ratios to BN')
    p.add_argument('configs', nargs='*', help='config files, or detector names with --all')
    p.add_argument('--all', action='store_true',
                   help='the positional arguments are detector names (ssdlite, mini/ssdlite, '
                        '...): time every norm config of each')
    p.add_argument('--iters', type=positive_int, default=5, help='timed iterations per repeat')
    p.add_argument('--repeats', type=positive_int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--baseline', default='bn', help='norm suffix of the reference config')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    p.add_argument('--amp', action='store_true', help='mixed precision (AmpOptimWrapper)')
    p.add_argument('--layouts', nargs='+', choices=LAYOUTS,
                   help="memory layouts to time each config in (default: the config's own)")
    p.add_argument('--optimizers', nargs='+', choices=OPTIMIZERS,
                   help="optimizer implementations to time each config with (default: the "
                        "config's own)")
    p.add_argument('--kernels', nargs='+', choices=KERNELS,
                   help='NORMDET_KERNELS values to time each config with (default: the '
                        'environment\'s)')
    p.add_argument('--out', help='write the results as JSON')
    args = parse_tool_args(p, argv)
    if args.all:
        names = args.configs
        args.configs = []
        for det in names:
            found = sorted(glob.glob(osp.join(REPO, 'configs', f'{det}_*.py')))
            found = [f for f in found if osp.basename(f)[len(osp.basename(det)) + 1:-3].isalnum()]
            if not found:
                p.error(f'no configs for detector {det!r} in configs/')
            args.configs += found
    if not args.configs:
        p.error('name at least one config (or a detector with --all)')
    return args


def detector_and_norm(path: str):
    stem = osp.splitext(osp.relpath(path, osp.join(REPO, 'configs')))[0]
    det, _, norm = stem.rpartition('_')
    return det, norm


class Bench:
    """One config, built once: model, optimizer and a fixed batch."""

    def __init__(self, path, args, layout=None, optimizer=None, kernels=None):
        import torch
        from mmengine.optim import build_optim_wrapper
        from mmengine.runner import Runner

        from normdet.cli.config import load_config
        from normdet.openmmlab.engine import to_memory_format
        from mmdet.registry import MODELS
        self.path, self.device = path, args.device
        self.kernels = kernels or os.environ.get('NORMDET_KERNELS', 'auto')
        cfg = load_config(path, args.cfg_options)
        if args.amp:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        if optimizer:  # this implementation's flag on, the other's to torch's default
            cfg.optim_wrapper.optimizer.update({o: (o == optimizer) or None for o in OPTIMIZERS})
        opt = cfg.optim_wrapper.optimizer
        self.optimizer = next((o for o in OPTIMIZERS if opt.get(o)), 'default')
        cfg.train_dataloader.num_workers = 0
        cfg.train_dataloader.persistent_workers = False
        self.model = MODELS.build(cfg.model)
        self.model.init_weights()
        self.layout = layout or LAYOUTS[bool(cfg.get('channels_last'))]
        if self.layout == 'channels_last':
            to_memory_format(self.model, True)
        self.model.to(args.device).train()
        self.optim = build_optim_wrapper(self.model, cfg.optim_wrapper)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        self.batch = next(iter(loader))
        self.images = len(self.batch['inputs'])
        self.times, self.peak_mb = [], None
        self._cuda = torch.device(args.device).type == 'cuda'

    def step(self):
        os.environ['NORMDET_KERNELS'] = self.kernels  # read by the layers at each call
        self.model.train_step(self.batch, self.optim)

    def run(self, iters):
        import torch
        if self._cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(iters):
            self.step()
        if self._cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2 ** 20
            self.peak_mb = max(self.peak_mb or 0, peak)
        self.times.append((time.perf_counter() - t) / iters)


def benchmark(args) -> dict:
    import torch
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    benches = []
    for path in args.configs:
        for layout in args.layouts or [None]:
            for opt in args.optimizers or [None]:
                for kernels in args.kernels or [None]:
                    what = ', '.join(w for w in (layout, opt, kernels) if w)
                    print(f'[benchmark_train] building {osp.relpath(path, REPO)}'
                          + (f' ({what})' if what else ''), flush=True)
                    benches.append(Bench(path, args, layout, opt, kernels))
    saved = os.environ.get('NORMDET_KERNELS')  # each Bench sets its own while it runs
    try:
        for b in benches:
            for _ in range(args.warmup):
                b.step()
        for r in range(args.repeats):
            for b in benches:
                b.run(args.iters)
            print(f'[benchmark_train] repeat {r + 1}/{args.repeats} done', flush=True)
    finally:
        if saved is None:
            os.environ.pop('NORMDET_KERNELS', None)
        else:
            os.environ['NORMDET_KERNELS'] = saved
    rows = []
    for b in benches:
        det, norm = detector_and_norm(b.path)
        ips = sorted(b.images / t for t in b.times)
        rows.append(dict(config=osp.relpath(b.path, REPO), detector=det, norm=norm,
                         layout=b.layout, optimizer=b.optimizer, kernels=b.kernels,
                         images=b.images,
                         s_per_iter_median=statistics.median(b.times),
                         img_s_min=ips[0], img_s_median=statistics.median(ips), img_s_max=ips[-1],
                         peak_mb=b.peak_mb))
    variant = ('layout', 'optimizer', 'kernels')
    base = {(r['detector'], *(r[v] for v in variant)): r for r in rows
            if r['norm'] == args.baseline}
    for r in rows:
        for key, field, value in (('ratio_to_nchw', 'layout', 'nchw'),
                                  ('ratio_to_foreach', 'optimizer', 'foreach'),
                                  ('ratio_to_torch', 'kernels', 'torch')):
            # the same config with only this variant at its reference value
            ref = next((o for o in rows if o['config'] == r['config'] and o[field] == value
                        and all(o[v] == r[v] for v in variant if v != field)), None)
            if ref is not None and ref is not r:
                r[key] = r['s_per_iter_median'] / ref['s_per_iter_median']
        ref = base.get((r['detector'], *(r[v] for v in variant)))
        if ref:
            r['ratio_to_bn'] = r['s_per_iter_median'] / ref['s_per_iter_median']
            if r['peak_mb'] and ref['peak_mb']:
                r['memory_ratio_to_bn'] = r['peak_mb'] / ref['peak_mb']
    return dict(device=describe(args.device), torch=torch.__version__, amp=args.amp,
                iters=args.iters, repeats=args.repeats, cfg_options=args.cfg_options,
                date=time.strftime('%Y-%m-%d %H:%M'), rows=rows)


def describe(device: str) -> str:
    import torch
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(device)
    return f'cpu ({torch.get_num_threads()} threads)'


def table(result) -> str:
    head = ('config', 'layout', 'optimizer', 'kernels', 'images', 'img/s min', 'img/s median',
            'img/s max', 's/iter (median)', 'x BN (time)', 'x NCHW (time)', 'x foreach (time)',
            'x torch (time)', 'peak MB', 'x BN (memory)')
    lines = [f"{result['device']}, torch {result['torch']}, amp {result['amp']}, "
             f"{result['repeats']} repeats x {result['iters']} iterations, {result['date']}",
             '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for r in result['rows']:
        cells = [r['config'], r['layout'], r['optimizer'], r.get('kernels', 'auto'),
                 str(r['images']),
                 f"{r['img_s_min']:.2f}",
                 f"{r['img_s_median']:.2f}", f"{r['img_s_max']:.2f}",
                 f"{r['s_per_iter_median']:.3f}", f"{r.get('ratio_to_bn', float('nan')):.2f}",
                 f"{r['ratio_to_nchw']:.2f}" if 'ratio_to_nchw' in r else '-',
                 f"{r['ratio_to_foreach']:.2f}" if 'ratio_to_foreach' in r else '-',
                 f"{r['ratio_to_torch']:.2f}" if 'ratio_to_torch' in r else '-',
                 '-' if r['peak_mb'] is None else f"{r['peak_mb']:.0f}",
                 f"{r['memory_ratio_to_bn']:.2f}" if 'memory_ratio_to_bn' in r else '-']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    result = benchmark(args)
    print(table(result))
    if args.out:
        from normdet.utils.io import atomic_write
        atomic_write(args.out, json.dumps(result, indent=2))
    return result


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    from normdet.cli.stack import require_openmmlab
    require_openmmlab()  # a missing package is one line, before torch is imported
    from normdet.cli.run import run_tool
    run_tool(main)
