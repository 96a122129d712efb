"""What the papers' layout costs on one machine: whole training runs of one config at several
(norm, processes x images) settings, each against a baseline setting timed in the same run.

    python tools/benchmark_dist.py [--config-pattern configs/mini/ssdlite_{norm}.py] \
        [--settings BN:1x16 BN:8x2 SyncBN:8x2 DNB:8x2] [--epochs 1] [--repeats 2] \
        [--work-dir work_dirs/bench_dist] [--out bench.json] [--cfg-options KEY=VALUE ...]

Each setting trains ``--epochs`` epochs of the config (the same total batch, so the same number
of iterations) without evaluation: through tools/train.py for one process (with the machine's
threads), tools/dist_train.sh for several (torch.distributed over gloo on the CPU, one thread
a process). Repeats go round-robin over the settings, so a busy machine slows all of them alike.
Per setting: seconds per training iteration (the run's training wall time, which the checkpoint
records, over its iterations), the start-up (the command's wall time less its training), each as
min / median / max over the repeats, and the ratio of the median time per iteration to the first
setting's (the baseline). No assertion: the numbers are for reading (docs/performance.md).
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402

SETTING = re.compile(r'^([A-Za-z]+):(\d+)x(\d+)$')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Training time per iteration at several processes x '
                                            'images settings, as ratios to the first')
    p.add_argument('--config-pattern', default='configs/mini/ssdlite_{norm}.py')
    p.add_argument('--settings', nargs='+', default=['BN:1x16', 'BN:8x2', 'SyncBN:8x2', 'DNB:8x2'],
                   help='NORM:PROCESSESxIMAGES, the first the baseline')
    p.add_argument('--epochs', type=positive_int, default=1)
    p.add_argument('--repeats', type=positive_int, default=2)
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'bench_dist'))
    p.add_argument('--out', help='write the results as JSON')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    args = parse_tool_args(p, argv, config=False)
    settings = []
    for s in args.settings:
        m = SETTING.match(s)
        if not m:
            raise ConfigError(f'--settings {s}: write NORM:PROCESSESxIMAGES, e.g. SyncBN:8x2')
        settings.append((m[1], int(m[2]), int(m[3])))
    totals = {g * b for _, g, b in settings}
    if len(totals) > 1:
        print(f'[normdet] warning: the settings train different total batches ({sorted(totals)}),'
              ' so different numbers of iterations an epoch', flush=True)
    args.settings = settings
    return args


def run_once(args, norm, gpus, batch, work_dir) -> dict:
    """Train one setting; {'iters', 'train_s', 'wall_s'}."""
    from normdet.openmmlab.engine.checkpoints import find_last_checkpoint, read_checkpoint
    config = osp.join(REPO, args.config_pattern.format(norm=norm.lower()))
    if not osp.isfile(config):
        raise ConfigError(f'config {config!r} not found (--config-pattern)')
    shutil.rmtree(work_dir, ignore_errors=True)
    options = ['--work-dir', work_dir, '--no-eval', '--cfg-options',
               f'train_dataloader.batch_size={batch}', f'train_cfg.max_epochs={args.epochs}',
               f'default_hooks.checkpoint.interval={args.epochs}', *args.cfg_options]
    env = dict(os.environ)
    if gpus == 1:
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, *options]
        env['OMP_NUM_THREADS'] = str(os.cpu_count())
    else:
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(gpus), *options]
        env['OMP_NUM_THREADS'] = '1'
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise ConfigError(f'{norm} {gpus}x{batch} failed (status {r.returncode}): '
                          + (r.stderr.strip().splitlines() or ['no output'])[-1])
    ckpt = read_checkpoint(find_last_checkpoint(work_dir), mmap=True)
    trained = ckpt.get('normdet') or {}
    return dict(iters=ckpt['meta']['iter'], train_s=trained['wall_s'], wall_s=wall)


def _spread(values, fmt='{:.3f}') -> str:
    return (f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-"
            f"{fmt.format(max(values))})")


def main(argv=None):
    args = parse_args(argv)
    results = {s: [] for s in args.settings}
    for rep in range(args.repeats):
        for norm, gpus, batch in args.settings:
            name = f'{norm}:{gpus}x{batch}'
            print(f'[normdet] repeat {rep + 1}/{args.repeats}: {name} ...', flush=True)
            run = run_once(args, norm, gpus, batch,
                           osp.join(args.work_dir, f'{norm.lower()}_{gpus}x{batch}'))
            results[(norm, gpus, batch)].append(run)
            print(f"[normdet]   {run['iters']} iterations, {run['train_s'] / run['iters']:.3f} "
                  f"s each, wall {run['wall_s']:.1f} s", flush=True)
    base = statistics.median(r['train_s'] / r['iters'] for r in results[args.settings[0]])
    lines = [f'{args.config_pattern}, {args.epochs} epoch(s) a run, {args.repeats} repeat(s), '
             f'{os.cpu_count()} CPU threads; median (min-max)', '',
             '| setting | processes x images | s / iteration | ratio to '
             f'{args.settings[0][0]} {args.settings[0][1]}x{args.settings[0][2]} | start-up and '
             'end, s |', '|---|---|---|---|---|']
    table = []
    for (norm, gpus, batch), runs in results.items():
        per_it = [r['train_s'] / r['iters'] for r in runs]
        other = [r['wall_s'] - r['train_s'] for r in runs]
        ratio = statistics.median(per_it) / base
        lines.append(f'| {norm} | {gpus} x {batch} | {_spread(per_it)} | **{ratio:.2f}** | '
                     f"{_spread(other, '{:.0f}')} |")
        table.append(dict(norm=norm, processes=gpus, images=batch, runs=runs, ratio=ratio))
    print('\n'.join(lines))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config_pattern=args.config_pattern, epochs=args.epochs,
                           results=table), f, indent=2)
    return table


if __name__ == '__main__':
    run_tool(main)
