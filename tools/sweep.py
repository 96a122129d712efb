"""Train and evaluate a grid of norm x images per GPU x seed, then write the comparison report.

    python tools/sweep.py --detector ssdlite --norms BN GN FRN MABN DNB DNC --batch 2 16 \
        --seeds 0 1 2 --epochs 24 --work-dir work_dirs/sweep_ssdlite [--data-root /data/coco/] \
        [--gpus 1] [--baseline BN] [--config-pattern configs/{detector}_{norm}.py] \
        [--cfg-options KEY=VALUE ...]

Each run is tools/train.py (tools/dist_train.sh with --gpus > 1) on the detector's config for
the norm, --config-pattern with {detector} and {norm} (lower case) filled in (default
configs/{detector}_{norm}.py: any detector with such configs, e.g. ssdlite, retinanet_r50_fpn,
mask_rcnn_r50_fpn), with the batch, seed and epoch budget set, in
WORK_DIR/<detector>_<norm>_b<batch>_s<seed>_<key>, where <key> is a hash of everything else the run
was given (config, --epochs, --data-root, --gpus, --cfg-options): a changed option trains a new
run instead of reusing a stale one. The sweep is resumable: finished runs with the same options
are skipped, an interrupted one resumes from its last checkpoint; a run that fails is recorded
(diverged when its loss went NaN/inf) and the sweep goes on. The console shows each run's
training and validation log lines as they come (all its output is in the run's sweep.log). At
the end the report of this sweep's runs (tools/report.py) is written to WORK_DIR/report (not with
--no-report). --epochs moves the config's epoch-based LR schedule with the budget
(normdet.cli.schedule.epoch_options: a cosine's T_max and end, a step schedule's milestones).
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import re
import resource
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

DIVERGED = re.compile(r'loss: (nan|inf)|loss become infinite or NaN|FloatingPointError|non-finite',
                      re.IGNORECASE)
PROGRESS = re.compile(r'(Epoch|Iter)\((train|val|test)\)|\[normdet\]|Error')
DEFAULT_PATTERN = 'configs/{detector}_{norm}.py'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Sweep norms x batch sizes x seeds')
    p.add_argument('--detector', required=True,
                   help='detector name in the config pattern, e.g. ssdlite, retinanet_r50_fpn, '
                        'mask_rcnn_r50_fpn')
    p.add_argument('--config-pattern', default=DEFAULT_PATTERN,
                   help='config of each run, {detector} and {norm} (lower case) filled in; '
                        'relative to the repository (default: %(default)s)')
    p.add_argument('--norms', nargs='+', required=True)
    p.add_argument('--batch', nargs='+', type=positive_int, required=True, help='images per GPU')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--epochs', type=positive_int, required=True, help='training epochs of every run')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--data-root', help='COCO-format root (default: the synthetic dataset)')
    p.add_argument('--gpus', type=positive_int, default=1, help='processes per run (dist_train.sh if > 1)')
    p.add_argument('--baseline', default='BN')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    p.add_argument('--no-report', action='store_true',
                   help='train only; no report at the end (tools/study.py writes its own)')
    args = parse_tool_args(p, argv, config=False)
    for norm in args.norms:
        if not osp.isfile(config_of(args, norm)):
            configs = osp.join(REPO, 'configs')
            known = sorted({osp.relpath(c, configs)[:-len('_bn.py')]
                            for c in glob.glob(osp.join(configs, '**', '*_bn.py'),
                                               recursive=True)})
            raise ConfigError(f'no config {config_of(args, norm)} for detector {args.detector!r} '
                              f'and norm {norm!r}; detectors with configs/<name>_<norm>.py: '
                              f"{', '.join(known)} (or give --config-pattern)")
    return args


def config_of(args, norm):
    return osp.join(REPO, args.config_pattern.format(detector=args.detector, norm=norm.lower()))


def options_key(args, norm) -> str:
    """A hash of what a run is given besides its norm, batch and seed."""
    given = dict(config=osp.relpath(config_of(args, norm), REPO), epochs=args.epochs,
                 data_root=args.data_root, gpus=args.gpus, cfg_options=args.cfg_options)
    return hashlib.sha1(json.dumps(given, sort_keys=True).encode()).hexdigest()[:8]


def run_name(args, norm, batch, seed) -> str:
    detector = args.detector.replace('/', '-')
    return f'{detector}_{norm.lower()}_b{batch}_s{seed}_{options_key(args, norm)}'


def command(args, norm, batch, seed, run_dir):
    from mmengine.config import Config

    from normdet.cli.schedule import epoch_options
    # the epoch budget moves the LR schedule with it (a cosine's T_max, a step's milestones)
    schedule = epoch_options(Config.fromfile(config_of(args, norm)), args.epochs)
    options = [f'train_dataloader.batch_size={batch}', f'randomness.seed={seed}', *schedule,
               f'train_cfg.val_interval={args.epochs}',
               *([f'data_root={args.data_root}'] if args.data_root else []), *args.cfg_options]
    head = ([sys.executable, osp.join(REPO, 'tools', 'train.py'), config_of(args, norm)]
            if args.gpus == 1 else
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config_of(args, norm),
             str(args.gpus)])
    resume = ['--resume'] if osp.isfile(osp.join(run_dir, 'last_checkpoint')) else []
    return head + ['--work-dir', run_dir, *resume, '--cfg-options', *options]


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs: a run's
    training processes, however many (tools/dist_train.sh's torchrun waits for its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(args, norm, batch, seed, run_dir, prefix):
    """Train one run; its output goes to run_dir/sweep.log, its progress lines to the console."""
    os.makedirs(run_dir, exist_ok=True)
    cmd = command(args, norm, batch, seed, run_dir)
    start, cpu = time.monotonic(), _children_cpu()
    with open(osp.join(run_dir, 'sweep.log'), 'a') as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, text=True,
            errors='replace') as proc:
        for line in proc.stdout:
            log.write(line)
            if PROGRESS.search(line):
                print(f"{prefix} {line.split(' - INFO - ')[-1].strip()}", flush=True)
        rc = proc.wait()
    with open(osp.join(run_dir, 'sweep.log'), errors='replace') as f:
        text = f.read()
    status = 'done' if rc == 0 else 'diverged' if DIVERGED.search(text) else 'failed'
    info = dict(detector=args.detector, norm=norm, batch=batch, gpus=args.gpus, seed=seed,
                status=status,
                returncode=rc, wall_s=round(time.monotonic() - start, 1),
                cpu_s=round(_children_cpu() - cpu, 1), command=cmd,
                options_key=options_key(args, norm), data_root=args.data_root)
    from normdet.utils.io import atomic_write
    atomic_write(osp.join(run_dir, 'sweep_run.json'), json.dumps(info, indent=2))
    return info


def main(argv=None):
    args = parse_args(argv)
    from normdet.study import write_study
    from normdet.study.runs import read_json
    grid = [(n, b, s) for n in args.norms for b in args.batch for s in args.seeds]
    start, timed, run_dirs = time.monotonic(), [], []
    print(f'[sweep] {len(grid)} runs of {args.detector} into {args.work_dir}', flush=True)
    for i, (norm, batch, seed) in enumerate(grid, 1):
        name = run_name(args, norm, batch, seed)
        run_dir = osp.join(args.work_dir, name)
        run_dirs.append(run_dir)
        prefix = f'[sweep {i}/{len(grid)}] {name}:'
        info_path = osp.join(run_dir, 'sweep_run.json')
        if osp.isfile(info_path) and read_json(info_path)['status'] == 'done':
            print(f'{prefix} finished before, skipped', flush=True)
            continue
        print(f'{prefix} training ...', flush=True)
        info = run_one(args, norm, batch, seed, run_dir, prefix)
        timed.append(info['wall_s'])
        eta = sum(timed) / len(timed) * (len(grid) - i)
        result = info['status']
        metrics = osp.join(run_dir, 'coco_metrics.json')
        if info['status'] == 'done' and osp.isfile(metrics):
            m = read_json(metrics)['metrics']
            result += f", bbox AP {100 * m['bbox_mAP']:.1f}"
        print(f'{prefix} {result} in {info["wall_s"]:.0f} s '
              f'(elapsed {time.monotonic() - start:.0f} s, about {eta:.0f} s left)', flush=True)
    if args.no_report:
        return None
    path = write_study(run_dirs, osp.join(args.work_dir, 'report'), args.baseline)
    print(f'[sweep] report: {path}', flush=True)
    return path


if __name__ == '__main__':
    run_tool(main)
