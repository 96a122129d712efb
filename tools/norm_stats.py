"""What a trained detector's norm layers hold: per layer with running statistics, the largest
running variance of the norm's input and, for DN-C, the scale its SC module generates in eval
(gamma + dgamma, from the running statistics) against the layer's own gamma. It shows where the
activations grew, and whether DN-C's generated scales grew with them.

    python tools/norm_stats.py work_dirs/RUN/ssdlite_dnc.py work_dirs/RUN/epoch_24.pth [--top 10]

The config is the run's (the one its work dir holds). Layers are listed in the network's order,
or, with --top N, the N with the largest running variance. Nothing runs through the network:
the numbers come from the checkpoint's weights and buffers alone (DN-C in eval is a fixed
per-channel affine; DN-B's scale depends on each sample, so only its running variance is shown).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="A checkpoint's norm layers: running variances and "
                                            "DN-C's generated scales")
    p.add_argument('config', help="the run's config (its work dir holds it)")
    p.add_argument('checkpoint', help='trained weights, e.g. work_dirs/RUN/epoch_24.pth')
    p.add_argument('--top', type=positive_int, metavar='N',
                   help='only the N layers with the largest running variance')
    return parse_tool_args(p, argv)


def layer_stats(model) -> list:
    """One dict per norm layer with running statistics, in the network's order: ``layer``,
    ``norm``, ``channels``, ``max_var`` (of running_var), ``max_gamma`` (the largest |gamma|, None
    without one) and, for DN-C, ``max_scale`` / ``median_scale`` of |gamma + dgamma| in eval."""
    import torch

    from normdet.layers import DNC
    from normdet.norms import norm_of
    rows = []
    for name, m in model.named_modules():
        norm, var = norm_of(m), getattr(m, 'running_var', None)
        if norm is None or not isinstance(var, torch.Tensor):
            continue
        var = var.float()
        weight = getattr(m, 'weight', None)
        row = dict(layer=name, norm=norm.name, channels=var.numel(),
                   max_var=var.max().item(),
                   max_gamma=None if weight is None else weight.detach().abs().max().item())
        if isinstance(m, DNC):
            with torch.no_grad():
                a, _ = m.eval_affine()  # a = (gamma + dgamma) / sqrt(running_var + eps)
            scale = (a * torch.sqrt(var + m.eps)).abs()
            row.update(max_scale=scale.max().item(), median_scale=scale.median().item())
        rows.append(row)
    return rows


def _num(v) -> str:
    return '-' if v is None else f'{v:,.2f}'


def main(argv=None):
    args = parse_args(argv)
    from normdet.cli.config import load_config
    from normdet.openmmlab.deploy import build_model
    rows = layer_stats(build_model(load_config(args.config), args.checkpoint))
    shown = sorted(rows, key=lambda r: -r['max_var'])[:args.top] if args.top else rows
    print(f'[normdet] {args.checkpoint}: {len(rows)} norm layers with running statistics'
          + (f', the {len(shown)} with the largest running variance' if args.top else ''))
    print("| layer | norm | channels | largest running variance | largest abs(gamma) | "
          "DN-C's largest abs(gamma + dgamma) | its median |")
    print('|---|---|---|---|---|---|---|')
    for r in shown:
        print(f"| {r['layer']} | {r['norm']} | {r['channels']} | {_num(r['max_var'])} | "
              f"{_num(r['max_gamma'])} | {_num(r.get('max_scale'))} | "
              f"{_num(r.get('median_scale'))} |")
    return rows


if __name__ == '__main__':
    run_tool(main)
