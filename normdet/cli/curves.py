"""A run's training curves as a picture: ``WORK_DIR/loss_lr.png``, the losses and the LR against
the iteration, from what MMEngine logged (``*/vis_data/scalars.json``, every part of a resumed
run), written when tools/train.py ends."""
import glob
import json
import math
import os.path as osp

PNG = 'loss_lr.png'


def read_scalars(work_dir: str) -> list:
    """Every row MMEngine logged for a run (a resumed run: all its log folders)."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))  # older logs hold NaN, which json accepts
                except json.JSONDecodeError:
                    continue
    return rows


def write_curves(work_dir: str, title: str = ''):
    """Draw the losses (log scale) and the LR of the run in ``work_dir``; returns the PNG's path,
    or None when nothing was logged."""
    rows = sorted((r for r in read_scalars(work_dir) if 'loss' in r and 'iter' in r),
                  key=lambda r: r['iter'])
    if not rows:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    losses = sorted({k for r in rows for k in r if k == 'loss' or k.startswith('loss_')})
    marker = 'o' if len(rows) < 20 else None  # a short run: its few points visible
    fig, (ax, lr_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in losses:
        pts = [(r['iter'], r[key]) for r in rows
               if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts), marker=marker, ms=3, lw=1.5 if key == 'loss' else 1,
                    label=key)
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.set_title('training loss')
    ax.legend(fontsize=7)
    pts = [(r['iter'], r['lr']) for r in rows if isinstance(r.get('lr'), (int, float))]
    if pts:
        lr_ax.plot(*zip(*pts), marker=marker, ms=3)
    lr_ax.set_xlabel('iteration')
    lr_ax.set_title('learning rate')
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = osp.join(work_dir, PNG)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
