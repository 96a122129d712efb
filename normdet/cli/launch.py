"""torchrun for tools/dist_train.sh and tools/dist_test.sh, with what goes wrong said once:

- ``MASTER_PORT`` in use (another run on this machine): said before anything starts, with how
  to choose another port, instead of a c10d ``EADDRINUSE`` traceback per process;
- a tool's error (``normdet.utils.errors.USER_ERRORS``: a bad config or dataset, a divergence, a full
  disk) on every rank: each rank leaves its message in a folder (``NORMDET_ERROR_DIR``,
  ``normdet.cli.run.run_tool``) and each distinct message is printed once, without torchrun's
  ChildFailedError trace and failure table;
- any other failure (a rank killed, hung, or raising an unexpected error, whose own traceback
  is above): one line names the rank and its exit code or signal.

    python -m normdet.cli.launch [torchrun's arguments] tools/train.py CONFIG ... --launcher pytorch

Exit status 1 on any failure.
"""
import errno
import glob
import os
import os.path as osp
import shutil
import socket
import sys
import tempfile

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from .run import die_with_parent


def port_in_use(port: int) -> bool:
    """Whether a process listens on ``port`` (SO_REUSEADDR: a port that only lingers in
    TIME_WAIT after an earlier run counts as free, as it does for torchrun)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('', port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('', 0))
        return s.getsockname()[1]


def port_message(port: int) -> str:
    return (f'[normdet] error: MASTER_PORT {port} is in use (another distributed run on this '
            f'machine?); choose a free port, e.g. MASTER_PORT={free_port()} bash '
            'tools/dist_train.sh ...')


def failure_message(e: ChildFailedError) -> str:
    parts = []
    for rank, failure in sorted(e.failures.items()):
        how = (f'was killed by signal {-failure.exitcode} ({failure.signal_name()})'
               if failure.exitcode < 0 else f'exited with status {failure.exitcode}')
        parts.append(f'rank {rank} {how}')
    return (f'[normdet] distributed run failed: {"; ".join(parts)}; torchrun stopped the other '
            'processes (a rank that raised printed its error above)')


def main(argv=None) -> None:
    die_with_parent()  # tools/dist_*.sh killed: torchrun stops the ranks (and they end with it)
    args = torchrun.parse_args(sys.argv[1:] if argv is None else argv)
    static = args.rdzv_backend == 'static' and not args.rdzv_endpoint
    if static and args.node_rank == 0 and port_in_use(args.master_port or 29500):
        sys.exit(port_message(args.master_port or 29500))
    errors = tempfile.mkdtemp(prefix='normdet-errors-')
    os.environ['NORMDET_ERROR_DIR'] = errors  # inherited by the ranks
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        messages = []
        for path in sorted(glob.glob(osp.join(errors, 'rank*'))):
            with open(path) as f:
                text = f.read().strip()
            if text not in messages:
                messages.append(text)
        sys.exit('\n'.join(messages) or failure_message(e))
    except Exception as e:  # the rendezvous store could not bind: the port was taken meanwhile
        if 'EADDRINUSE' in str(e) or 'address already in use' in str(e).lower():
            sys.exit(port_message(args.master_port or 29500))
        raise
    finally:
        shutil.rmtree(errors, ignore_errors=True)


if __name__ == '__main__':
    main()
