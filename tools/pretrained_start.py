"""What a BN-pretrained start buys each norm against training from scratch, on the embedded
benchmark (docs/pretrained.md).

    python tools/pretrained_start.py [--norms BN SyncBN GN FRN MABN DNB DNC RBN] [--seeds 0 1 2]
        [--epochs 12] [--pretrain-epochs N] [--work-dir work_dirs/pretrained_start]
        [--cfg-options KEY=VALUE ...]

1. pretrain: the mini SSDLite with BN (configs/mini/ssdlite_bn.py), seed 0, --pretrain-epochs
   epochs (default: --epochs), in WORK_DIR/pretrain;
2. scratch: every norm's mini SSDLite (configs/mini/ssdlite_<norm>.py) from scratch, in
   WORK_DIR/scratch;
3. pretrained: the same runs with the backbone started from the pretrained detector's backbone,
   in WORK_DIR/pretrained, through the config options a user gives:
       norm_options.scratch=False model.backbone.init_cfg.type=Pretrained
       model.backbone.init_cfg.checkpoint=CKPT model.backbone.init_cfg.prefix=backbone.
   (the backbone's BNs go into each norm as docs/pretrained.md says; the neck and head start
   from their own init, as with an ImageNet backbone);
then WORK_DIR/pretrained_start.md: box AP per norm, from scratch and BN-pretrained (mean and
spread over the seeds), and the difference. Each step is tools/sweep.py (resumable: finished
runs are kept, an interrupted one resumes). --cfg-options go to every run, the pretraining
included (``synthetic_data=tiny`` for a smoke run).

The pretraining sees the benchmark's own training images: the difference measures how a
BN-trained backbone transfers into each norm, not what an ImageNet backbone would give.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.norms import NORMS  # noqa: E402
from normdet.utils.errors import CheckpointError  # noqa: E402

BATCH = 16  # the mini configs' images per GPU


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='BN-pretrained start against scratch, every norm')
    p.add_argument('--norms', nargs='+', default=list(NORMS), choices=list(NORMS))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--epochs', type=positive_int, default=12,
                   help='epochs of every compared run (default: %(default)s)')
    p.add_argument('--pretrain-epochs', type=positive_int, default=None,
                   help='epochs of the BN pretraining (default: --epochs)')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'pretrained_start'))
    p.add_argument('--cfg-options', nargs='+', default=[], help='passed to every run')
    return parse_tool_args(p, argv, config=False)


def sweep(args, work_dir, norms, seeds, options, epochs=None):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'sweep.py'), '--detector', 'ssdlite',
           '--config-pattern', 'configs/mini/{detector}_{norm}.py', '--norms', *norms,
           '--batch', str(BATCH), '--seeds', *map(str, seeds),
           '--epochs', str(epochs or args.epochs),
           '--work-dir', work_dir, '--no-report']
    options = [*args.cfg_options, *options]
    print(f"[normdet] {' '.join(cmd + (['--cfg-options', *options] if options else []))}",
          flush=True)
    subprocess.run(cmd + (['--cfg-options', *options] if options else []), cwd=REPO)


def pretrained_checkpoint(work_dir) -> str:
    """The last checkpoint of the BN pretraining run (the newest, if options changed)."""
    runs = sorted(glob.glob(osp.join(work_dir, f'ssdlite_bn_b{BATCH}_s*', 'last_checkpoint')),
                  key=osp.getmtime)
    if not runs:
        raise CheckpointError(f'the BN pretraining left no checkpoint in {work_dir}; see its '
                              'sweep.log')
    with open(runs[-1]) as f:  # the checkpoint's name, relative to its run's folder
        return osp.abspath(osp.join(osp.dirname(runs[-1]), f.read().strip()))


def box_ap(work_dir) -> dict:
    """{norm: [box AP of each finished run, or None for a failed one]}."""
    out = {}
    for info_path in sorted(glob.glob(osp.join(work_dir, '*', 'sweep_run.json'))):
        with open(info_path) as f:
            info = json.load(f)
        metrics = osp.join(osp.dirname(info_path), 'coco_metrics.json')
        ap = None
        if info.get('status') == 'done' and osp.isfile(metrics):
            with open(metrics) as f:
                ap = json.load(f)['metrics'].get('bbox_mAP')
        out.setdefault(info['norm'], []).append(ap)
    return out


def _cell(aps) -> str:
    done = [100 * a for a in aps or [] if a is not None]
    if not done:
        return 'failed' if aps else '-'
    text = f'{statistics.mean(done):.1f}'
    if len(done) > 1:
        text += f' ± {statistics.stdev(done):.1f}'
    failed = len(aps) - len(done)
    return text + (f' ({failed} failed)' if failed else '')


def write_table(args, checkpoint) -> str:
    scratch = box_ap(osp.join(args.work_dir, 'scratch'))
    pretrained = box_ap(osp.join(args.work_dir, 'pretrained'))
    lines = ['# BN-pretrained start against scratch (mini SSDLite, embedded benchmark)', '',
             f'{args.epochs} epochs a run (the BN pretraining: '
             f'{args.pretrain_epochs or args.epochs}), seeds {" ".join(map(str, args.seeds))}, '
             f'{BATCH} images a batch; backbone from {checkpoint} (prefix backbone.); box AP '
             '(%, mean ± std over seeds). Written by tools/pretrained_start.py.', '',
             '| norm | from scratch | BN-pretrained | difference |', '|---|---|---|---|']
    for norm in args.norms:
        a = [x for x in scratch.get(norm, []) if x is not None]
        b = [x for x in pretrained.get(norm, []) if x is not None]
        diff = (f'{100 * (statistics.mean(b) - statistics.mean(a)):+.1f}' if a and b else '-')
        lines.append(f'| {norm} | {_cell(scratch.get(norm))} | {_cell(pretrained.get(norm))} '
                     f'| {diff} |')
    path = osp.join(args.work_dir, 'pretrained_start.md')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    sweep(args, osp.join(args.work_dir, 'pretrain'), ['BN'], [0], [], args.pretrain_epochs)
    checkpoint = pretrained_checkpoint(osp.join(args.work_dir, 'pretrain'))
    sweep(args, osp.join(args.work_dir, 'scratch'), args.norms, args.seeds, [])
    sweep(args, osp.join(args.work_dir, 'pretrained'), args.norms, args.seeds, [
        'norm_options.scratch=False', 'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={checkpoint}',
        'model.backbone.init_cfg.prefix=backbone.'])
    path = write_table(args, checkpoint)
    with open(path) as f:
        print(f.read(), end='')
    print(f'[normdet] table: {path}')
    return path


if __name__ == '__main__':
    run_tool(main)
