"""How a tool ends: an error in what the user gave is one line and exit status 1, and a rank of a
distributed run ends without the interpreter's finalisation."""
import atexit
import ctypes
import errno
import os
import os.path as osp
import re
import signal
import sys

import torch.distributed as dist

from ..utils.allocator import keep_freed_memory
from ..utils.errors import USER_ERRORS
from ..utils.io import atomic_write


# what the OS says when a file cannot be written: a full disk or quota, a read-only or
# forbidden folder
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
# what a collective raises on a rank whose peer has gone (killed, crashed, stopped by torchrun)
PEER_LOST = re.compile(r'connection (reset|closed) by peer|broken pipe|socket closed|'
                       r'connection refused|read error|gloo|nccl', re.IGNORECASE)
PEER_LOST_STATUS = 3  # the exit status of such a rank, which normdet.cli.launch names last


def is_distributed() -> bool:
    """Whether this process belongs to a process group (as MMEngine's ``is_distributed``)."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop): ends a tool as Ctrl-C does."""


_STOPS = []  # the stop signals this process received


def _stop(signum, frame):
    """Ctrl-C and SIGTERM: remembered (a library's bare ``except:`` may turn the exception
    raised here into another one), then raised as KeyboardInterrupt / Terminated."""
    _STOPS.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _quiet_lost_pipes(kind, value, tb, _default=sys.excepthook):
    """A pipe or socket whose other end is gone (a data-loader worker still handing a batch to
    a main process that stopped; output piped into ``head``) is not news: the error that ended
    the tool, if any, is said elsewhere."""
    if issubclass(kind, (BrokenPipeError, ConnectionResetError)):
        return
    _default(kind, value, tb)


def run_tool(main) -> None:
    """Run a tool's ``main``; an error in what the user gave or a run that cannot go on
    (``normdet.utils.errors.USER_ERRORS``) prints its message (which names the problem and the fix)
    without a traceback and exits with status 1. Under ``normdet.cli.launch`` (tools/dist_*.sh) a
    rank leaves its message to the launcher, which prints each distinct one once. A rank of a
    distributed run ends through ``exit_rank``. glibc's malloc is first set to reuse freed memory
    (``normdet.utils.allocator``)."""
    keep_freed_memory()
    signal.signal(signal.SIGINT, _stop)
    sys.excepthook = _quiet_lost_pipes  # inherited by the data-loader workers
    if 'TORCHELASTIC_RUN_ID' in os.environ:  # a rank under torchrun: ends with its launcher
        die_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # how torchrun stops its ranks
    else:
        signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        try:
            main()
        except BaseException:
            if _STOPS:  # whatever a library made of the stop
                raise KeyboardInterrupt() from None
            raise
    except KeyboardInterrupt:  # every rank gets it: rank 0 says it
        sys.unraisablehook = lambda unraisable: None  # objects the stop left half-built
        term = signal.SIGTERM in _STOPS
        if os.environ.get('RANK', '0') == '0':
            print(f'[normdet] {"terminated (SIGTERM)" if term else "interrupted (Ctrl-C)"}: '
                  'nothing after the last checkpoint (if one was written) was kept; a training '
                  'run continues from it with the same command and --resume (which starts '
                  'afresh where there is none)', file=sys.stderr, flush=True)
        code = 143 if term else 130
    except USER_ERRORS as e:
        code = _report(f'[normdet] error: {e}')
    except OSError as e:  # a file the tool could not write: a full disk, a read-only folder
        if e.errno not in WRITE_ERRORS:
            raise
        code = _report(f'[normdet] error: cannot write {e.filename or "a file"}: {e.strerror}; '
                       'free space or fix the permissions there (or choose another --work-dir), '
                       'then run the command again (a training run: with --resume)')
    except RuntimeError as e:  # a collective whose peer is gone: that rank's failure is the news
        if not (is_distributed() and PEER_LOST.search(str(e))):
            raise
        print(f'[normdet] rank {os.environ.get("RANK", "?")} lost its connection to another '
              f'rank ({str(e).splitlines()[0][:120]}); the launcher names the rank that failed '
              'first', file=sys.stderr, flush=True)
        code = PEER_LOST_STATUS
    if getattr(main, '__module__', None) == '__main__':  # a tool's process, about to exit
        # its work is over: a stop signal from here on has nothing to stop, and at the
        # interpreter's exit (which puts the default actions back) it would end the process as
        # killed (status -2 / -15) after everything was written. (Not for a main called in
        # another program's process, which keeps its handlers.)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if is_distributed():
        exit_rank(code)
    if code:
        sys.exit(code)


def _report(message: str) -> int:
    """Say a tool's error once: under ``normdet.cli.launch`` a rank leaves it to the launcher
    (which prints each distinct message once), otherwise it is printed. Returns the status, 1."""
    folder = os.environ.get('NORMDET_ERROR_DIR')
    if folder and 'RANK' in os.environ:
        atomic_write(osp.join(folder, f'rank{os.environ["RANK"]}'), message)
    else:
        print(message, file=sys.stderr, flush=True)
    return 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux
    ``PR_SET_PDEATHSIG``): a launcher killed, even by SIGKILL, takes its processes with it
    instead of leaving them training unsupervised. A no-op elsewhere."""
    if not sys.platform.startswith('linux'):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the call: too late for the signal
        os.kill(os.getpid(), sig)


def exit_rank(code: int) -> None:
    """End a process of a distributed run with ``code``, without the interpreter's finalisation.

    A gloo worker thread can still hold the last collective's tensors when the tool returns:
    it marks the work done (which wakes the tool) before it lets go of them, and letting go of
    a tensor Python also knew takes the GIL. If that happens while the interpreter finalises,
    the thread is ended inside C++ code that may not end it, and the process aborts
    (``terminate called without an active exception``, SIGABRT) after its work is done: about
    one 2-process CPU run in nine. The exit handlers (log files, data-loader workers) run
    first and the output is flushed, so nothing the tool wrote is lost."""
    atexit._run_exitfuncs()  # what the interpreter's exit runs first, before the finalisation
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
