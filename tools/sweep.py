"""Train and evaluate a grid of norm x images per GPU x seed, then write the comparison report.

    python tools/sweep.py --detector ssdlite --norms BN GN FRN MABN DNB DNC --batch 2 16 \
        --seeds 0 1 2 --epochs 24 --work-dir work_dirs/sweep_ssdlite [--data-root /data/coco/] \
        [--gpus 1] [--baseline BN] [--cfg-options KEY=VALUE ...]

Each run is tools/train.py (tools/dist_train.sh with --gpus > 1) on configs/<detector>_<norm>.py
with the batch, seed and epoch budget set, in WORK_DIR/<detector>_<norm>_b<batch>_s<seed>. The
sweep is resumable: finished runs are skipped, an interrupted one resumes from its last
checkpoint; a run that fails is recorded (diverged when its loss went NaN/inf) and the sweep goes
on. At the end tools/report.py's report is written to WORK_DIR/report.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIVERGED = re.compile(r'loss: (nan|inf)|loss become infinite or NaN|FloatingPointError|non-finite',
                      re.IGNORECASE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Sweep norms x batch sizes x seeds')
    p.add_argument('--detector', required=True, choices=['ssdlite', 'retinanet_r50_fpn',
                                                        'mask_rcnn_r50_fpn'])
    p.add_argument('--norms', nargs='+', required=True)
    p.add_argument('--batch', nargs='+', type=int, required=True, help='images per GPU')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--epochs', type=int, required=True, help='training epochs of every run')
    p.add_argument('--work-dir', required=True)
    p.add_argument('--data-root', help='COCO-format root (default: the synthetic dataset)')
    p.add_argument('--gpus', type=int, default=1, help='processes per run (dist_train.sh if > 1)')
    p.add_argument('--baseline', default='BN')
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    args = p.parse_args(argv)
    for norm in args.norms:
        if not osp.isfile(config_of(args.detector, norm)):
            p.error(f'no config {config_of(args.detector, norm)} for norm {norm!r}')
    return args


def config_of(detector, norm):
    return osp.join(REPO, 'configs', f'{detector}_{norm.lower()}.py')


def command(args, norm, batch, seed, run_dir):
    options = [f'train_dataloader.batch_size={batch}', f'randomness.seed={seed}',
               f'train_cfg.max_epochs={args.epochs}', f'train_cfg.val_interval={args.epochs}',
               *([f'data_root={args.data_root}'] if args.data_root else []), *args.cfg_options]
    head = ([sys.executable, osp.join(REPO, 'tools', 'train.py'), config_of(args.detector, norm)]
            if args.gpus == 1 else
            ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config_of(args.detector, norm),
             str(args.gpus)])
    resume = ['--resume'] if osp.isfile(osp.join(run_dir, 'last_checkpoint')) else []
    return head + ['--work-dir', run_dir, *resume, '--cfg-options', *options]


def run_one(args, norm, batch, seed, run_dir):
    os.makedirs(run_dir, exist_ok=True)
    cmd = command(args, norm, batch, seed, run_dir)
    start = time.monotonic()
    with open(osp.join(run_dir, 'sweep.log'), 'a') as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    with open(osp.join(run_dir, 'sweep.log'), errors='replace') as f:
        text = f.read()
    status = 'done' if rc == 0 else 'diverged' if DIVERGED.search(text) else 'failed'
    info = dict(detector=args.detector, norm=norm, batch=batch, seed=seed, status=status,
                returncode=rc, wall_s=round(time.monotonic() - start, 1), command=cmd)
    from normdet.io import atomic_write
    atomic_write(osp.join(run_dir, 'sweep_run.json'), json.dumps(info, indent=2))
    return info


def main(argv=None):
    args = parse_args(argv)
    from normdet.study import read_json, write_study
    grid = [(n, b, s) for n in args.norms for b in args.batch for s in args.seeds]
    start, timed = time.monotonic(), []
    print(f'[sweep] {len(grid)} runs of {args.detector} into {args.work_dir}', flush=True)
    for i, (norm, batch, seed) in enumerate(grid, 1):
        name = f'{args.detector}_{norm.lower()}_b{batch}_s{seed}'
        run_dir = osp.join(args.work_dir, name)
        info_path = osp.join(run_dir, 'sweep_run.json')
        if osp.isfile(info_path) and read_json(info_path)['status'] == 'done':
            print(f'[sweep {i}/{len(grid)}] {name}: finished before, skipped', flush=True)
            continue
        print(f'[sweep {i}/{len(grid)}] {name}: training ...', flush=True)
        info = run_one(args, norm, batch, seed, run_dir)
        timed.append(info['wall_s'])
        eta = sum(timed) / len(timed) * (len(grid) - i)
        result = info['status']
        metrics = osp.join(run_dir, 'coco_metrics.json')
        if info['status'] == 'done' and osp.isfile(metrics):
            m = read_json(metrics)['metrics']
            result += f", bbox AP {100 * m['bbox_mAP']:.1f}"
        print(f'[sweep {i}/{len(grid)}] {name}: {result} in {info["wall_s"]:.0f} s '
              f'(elapsed {time.monotonic() - start:.0f} s, about {eta:.0f} s left)', flush=True)
    path = write_study([args.work_dir], osp.join(args.work_dir, 'report'), args.baseline)
    print(f'[sweep] report: {path}', flush=True)
    return path


if __name__ == '__main__':
    main()
