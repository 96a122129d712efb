"""The command line of a tool: MMDetection's shared flags, never abbreviated; numbers that must
be positive; an output that would replace one of the tool's inputs refused."""
import argparse
import os
import os.path as osp

from ..utils.errors import ConfigError


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (epochs, iterations, images, jobs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'{value} is not at least 1')
    return value


def check_output(flag: str, out: str, *inputs: str) -> None:
    """Refuse an output path that is one of the tool's inputs (the same file by any path): the
    tool would replace what it reads."""
    for source in inputs:
        if source and out and osp.exists(source) and osp.exists(out) and osp.samefile(out, source):
            raise ConfigError(f'{flag} {out} is one of this command\'s inputs ({source}): writing '
                              'it would replace it; choose another path')
        if source and out and osp.abspath(out) == osp.abspath(source):
            raise ConfigError(f'{flag} {out} is one of this command\'s inputs: writing it would '
                              'replace it; choose another path')


def parse_tool_args(parser, argv=None, *, config: bool = True):
    """Parse a tool's command line. With ``config`` (the tools that load a config), add the flags
    every such tool shares with MMDetection's (--cfg-options, --launcher, --local-rank) and export
    LOCAL_RANK as torch.distributed.launch expects. Flags are never abbreviated (argparse would
    take --show for --show-dir)."""
    parser.allow_abbrev = False
    if not config:
        return parser.parse_args(argv)
    from ..openmmlab.config import CfgOptions
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptions,
                        help='override config keys, e.g. data_root=/data/coco/ '
                             'train_cfg.max_epochs=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
