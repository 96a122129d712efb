"""Parameters and Mult-Adds of a model, and the share its norms add (DN's SC modules): what the
Dynamic Normalization paper's "+0.6 % Mult-Adds" compares.

    python tools/model_cost.py configs/ssdlite_dnb.py [--size 320 320] [--cfg-options ...]
    python tools/model_cost.py --torchvision mobilenet_v2 --norm DNB [--size 224 224]

The first form builds a config's detector as training would (norm, classes, heads) and counts
its network without post-processing (mmdet's ``mode='tensor'``; a two-stage detector's RoI heads
on 8 example RoIs); the second takes a torchvision classifier with its BNs converted to --norm
(``normdet.convert_module``), the paper's own ImageNet setting.

Mult-Adds are counted per image, in eval mode, as the papers count them: one per multiply of
every convolution and fully connected layer (the detector's and the SC modules' alike). Norms
add, per image:
- ``sc``: the SC module's two FCs, 2 * (2C * hidden) each time it runs: once per image for DN-B,
  once per batch for DN-C (counted once per image here, its cost at batch 1);
- ``stats``: DN-B's per-sample mean and variance in eval, 2 per activation element (BN, DN-C and
  MABN use their running statistics and fold into the conv before them in eval: 0).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.utils.errors import ConfigError, path_problem  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Parameters and Mult-Adds of a model and its norms' "
                                            'share')
    p.add_argument('config', nargs='?', help='a normdet config (or give --torchvision)')
    p.add_argument('--torchvision', metavar='MODEL',
                   help='a torchvision classifier instead of a config, e.g. mobilenet_v2')
    p.add_argument('--norm', default='BN', help='the norm of --torchvision (default: BN)')
    p.add_argument('--size', type=positive_int, nargs=2, metavar=('H', 'W'),
                   help='input size (default: 320 320 for a config, 224 224 for torchvision)')
    args = parse_tool_args(p, argv)
    if (args.config is None) == (args.torchvision is None):
        raise ConfigError('give a config or --torchvision MODEL, not both')
    if args.config is not None and not osp.isfile(args.config):
        raise ConfigError(f'config {args.config!r} {path_problem(args.config)}; the configs are in '
                          'configs/, e.g. '
                          'configs/ssdlite_dnb.py')
    return args


def count(net, inputs) -> dict:
    """{'params', 'norm_params', 'mult_adds', 'sc', 'stats'} of one forward of ``net`` on
    ``inputs`` (batch 1)."""
    import torch
    from torch import nn

    from normdet.layers.dn import _DynamicNorm
    from normdet.norms import norm_of

    out = dict(mult_adds=0, sc=0, stats=0)

    def conv(m, inp, y):
        out['mult_adds'] += y.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * \
            m.kernel_size[1]

    def linear(m, inp, y):
        out['mult_adds'] += y.numel() * m.in_features

    def dn(m, inp, y):
        x = inp[0]
        fc1, fc2 = m.sc[0], m.sc[2]
        rows = x.shape[0] if m.per_sample else 1
        out['sc'] += rows * (fc1.in_features * fc1.out_features
                             + fc2.in_features * fc2.out_features)
        if m.per_sample:
            out['stats'] += 2 * x.numel()

    norm_modules = [m for m in net.modules() if norm_of(m) is not None]
    in_norms = {id(c) for n in norm_modules for c in n.modules()}  # the SC modules' FCs
    hooks = []
    for m in net.modules():
        if isinstance(m, _DynamicNorm):
            hooks.append(m.register_forward_hook(dn))
        elif isinstance(m, nn.Conv2d):  # (a norm's SC module has no Conv2d)
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear) and id(m) not in in_norms:
            hooks.append(m.register_forward_hook(linear))
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in hooks:
            h.remove()
    out['params'] = sum(p.numel() for p in net.parameters())
    out['norm_params'] = sum(p.numel() for m in norm_modules for p in m.parameters())
    out['sc_params'] = sum(p.numel() for m in norm_modules if isinstance(m, _DynamicNorm)
                           for p in m.sc.parameters())
    return out


def build(args):
    """(net, inputs, description)."""
    import torch
    if args.torchvision:
        import torchvision

        from normdet.norms import convert_module
        size = args.size or (224, 224)
        try:
            net = getattr(torchvision.models, args.torchvision)(weights=None)
        except (AttributeError, TypeError) as e:
            raise ConfigError(f'--torchvision {args.torchvision}: not a torchvision model '
                              f'({e})') from None
        net = convert_module(net, args.norm).eval()
        return net, (torch.randn(1, 3, *size),), f'torchvision {args.torchvision}, {args.norm}'
    from normdet.cli.config import load_config
    from normdet.openmmlab.deploy import TensorForward, build_model
    size = args.size or (320, 320)
    cfg = load_config(args.config, dict(args.cfg_options or {}))
    net = TensorForward(build_model(cfg))
    return net, net.example_inputs(torch.randn(1, 3, *size)), f'{args.config}, {cfg.norm}'


def main(argv=None):
    args = parse_args(argv)
    net, inputs, what = build(args)
    c = count(net, inputs)
    size = 'x'.join(map(str, inputs[0].shape[-2:]))
    base = c['mult_adds']
    print(f'[normdet] {what}, input {size}, eval mode, per image')
    print('| | parameters | Mult-Adds | share of the network\'s Mult-Adds |')
    print('|---|---|---|---|')
    print(f"| network (convolutions, FCs) | {c['params'] - c['norm_params']:,} | {base:,} | "
          '100 % |')
    print(f"| norms' parameters (affine, SC modules) | {c['norm_params']:,} | | |")
    print(f"| SC modules' FCs | {c['sc_params']:,} | {c['sc']:,} | "
          f"{100 * c['sc'] / base:.2f} % |")
    print(f"| DN-B's per-sample statistics (eval) | | {c['stats']:,} | "
          f"{100 * c['stats'] / base:.2f} % |")
    return c


if __name__ == '__main__':
    run_tool(main)
