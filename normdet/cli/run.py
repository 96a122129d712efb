"""How a tool ends: an error in what the user gave is one line and exit status 1, and a rank of a
distributed run ends without the interpreter's finalisation."""
import atexit
import os
import os.path as osp
import sys

import torch.distributed as dist

from ..utils.allocator import keep_freed_memory
from ..utils.errors import USER_ERRORS
from ..utils.io import atomic_write


def is_distributed() -> bool:
    """Whether this process belongs to a process group (as MMEngine's ``is_distributed``)."""
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def run_tool(main) -> None:
    """Run a tool's ``main``; an error in what the user gave or a run that cannot go on
    (``normdet.utils.errors.USER_ERRORS``) prints its message (which names the problem and the fix)
    without a traceback and exits with status 1. Under ``normdet.cli.launch`` (tools/dist_*.sh) a
    rank leaves its message to the launcher, which prints each distinct one once. A rank of a
    distributed run ends through ``exit_rank``. glibc's malloc is first set to reuse freed memory
    (``normdet.utils.allocator``)."""
    keep_freed_memory()
    code = 0
    try:
        main()
    except USER_ERRORS as e:
        message = f'[normdet] error: {e}'
        folder = os.environ.get('NORMDET_ERROR_DIR')
        if folder and 'RANK' in os.environ:
            atomic_write(osp.join(folder, f'rank{os.environ["RANK"]}'), message)
        else:
            print(message, file=sys.stderr, flush=True)
        code = 1
    if is_distributed():
        exit_rank(code)
    if code:
        sys.exit(code)


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
