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
import threading
import time

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from .run import PEER_LOST_STATUS, die_with_parent


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


class DeathWatch(threading.Thread):
    """When each child process of the launcher (torchrun's ranks) died, to 20 ms: torchrun
    stamps its failures to the second, so a rank it stopped (SIGTERM) after another died looks
    as early as the one that died first."""

    def __init__(self):
        super().__init__(daemon=True)
        self.died = {}  # pid -> time.monotonic() when first seen dead
        self._stop = threading.Event()

    def _children(self) -> set:
        pids = set()
        for path in glob.glob(f'/proc/{os.getpid()}/task/*/children'):
            try:
                with open(path) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                continue
        return pids

    def run(self):
        alive = set()
        while not self._stop.wait(0.02):
            alive |= self._children()
            for pid in list(alive):
                try:
                    with open(f'/proc/{pid}/stat') as f:
                        dead = f.read().rsplit(')', 1)[1].split()[0] in 'ZX'
                except OSError:  # reaped already
                    dead = True
                if dead:
                    self.died.setdefault(pid, time.monotonic())
                    alive.discard(pid)

    def stop(self):
        self._stop.set()


def failure_message(e: ChildFailedError, died: dict = None) -> str:
    """One line: the rank that failed first, then the others. A rank that only lost its
    connection to a failed one (exit status ``PEER_LOST_STATUS``, ``normdet.cli.run``) comes
    last; the others in the order they died (``died``: pid -> time, from ``DeathWatch``; else
    torchrun's stamps, to the second, a signal first)."""
    died = died or {}
    failures = sorted(e.failures.items(), key=lambda kv: (
        kv[1].exitcode == PEER_LOST_STATUS, died.get(kv[1].pid, float('inf')), kv[1].timestamp,
        kv[1].exitcode >= 0, kv[0]))
    parts = []
    for i, (rank, failure) in enumerate(failures):
        how = (f'was killed by signal {-failure.exitcode} ({failure.signal_name()})'
               if failure.exitcode < 0 else
               'lost its connection to another rank (which died or hung)'
               if failure.exitcode == PEER_LOST_STATUS else
               f'exited with status {failure.exitcode}')
        parts.append(f'rank {rank} {how}' + (' first' if i == 0 and len(failures) > 1 else ''))
    return (f'[normdet] distributed run failed: {"; then ".join(parts)}; torchrun stopped the '
            'other processes (a rank that raised printed its error above)')


def main(argv=None) -> None:
    die_with_parent()  # tools/dist_*.sh killed: torchrun stops the ranks (and they end with it)
    args = torchrun.parse_args(sys.argv[1:] if argv is None else argv)
    static = args.rdzv_backend == 'static' and not args.rdzv_endpoint
    if static and args.node_rank == 0 and port_in_use(args.master_port or 29500):
        sys.exit(port_message(args.master_port or 29500))
    errors = tempfile.mkdtemp(prefix='normdet-errors-')
    os.environ['NORMDET_ERROR_DIR'] = errors  # inherited by the ranks
    watch = DeathWatch()
    watch.start()
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        messages = []
        for path in sorted(glob.glob(osp.join(errors, 'rank*'))):
            with open(path) as f:
                text = f.read().strip()
            if text not in messages:
                messages.append(text)
        watch.stop()
        sys.exit('\n'.join(messages) or failure_message(e, watch.died))
    except Exception as e:  # the rendezvous store could not bind: the port was taken meanwhile
        if 'EADDRINUSE' in str(e) or 'address already in use' in str(e).lower():
            sys.exit(port_message(args.master_port or 29500))
        raise
    finally:
        watch.stop()
        shutil.rmtree(errors, ignore_errors=True)


if __name__ == '__main__':
    main()
