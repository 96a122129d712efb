"""The command line of a tool: MMDetection's shared flags, never abbreviated."""
import os


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
