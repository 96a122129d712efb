"""What a run may write where: a training run never silently replaces another's checkpoints, and
an evaluation never replaces the report of another checkpoint."""
import contextlib
import errno
import fcntl
import json
import os
import os.path as osp
import sys
import time

from ..utils.errors import CheckpointError
from .report import JSON_NAME

LOCK = '.normdet.lock'


@contextlib.contextmanager
def locked(work_dir: str):
    """Hold ``work_dir`` for this run: a second run into it while this one works is refused
    with who holds it (two runs into one folder would write each other's checkpoints). The lock
    (``flock`` on ``WORK_DIR/.normdet.lock``) goes with the process, however it ends; only rank 0
    of a distributed run takes it."""
    if os.environ.get('RANK', '0') != '0':
        yield
        return
    try:
        os.makedirs(work_dir, exist_ok=True)
        f = open(osp.join(work_dir, LOCK), 'a+')
    except OSError as e:
        raise CheckpointError(f'cannot write into work dir {work_dir!r} ({e.strerror or e}): a '
                              'run needs to write its log and checkpoints there; make it '
                              'writable, or use another --work-dir') from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        f.seek(0)
        holder = f.read().strip() or 'another process'
        f.close()
        raise CheckpointError(f'work dir {work_dir!r} is in use by another run ({holder}): wait '
                              'for it to end, or use another --work-dir') from None
    f.seek(0)
    f.truncate()
    f.write(f'pid {os.getpid()}, since {time.strftime("%Y-%m-%d %H:%M:%S")}: '
            + ' '.join(sys.argv))
    f.flush()
    try:
        yield
    finally:
        f.close()  # releases the lock


def check_work_dir(work_dir: str, resume: bool, overwrite: bool) -> None:
    """Training into a work dir that holds a run's checkpoints continues it (``resume``) or
    starts over there (``overwrite``: its ``last_checkpoint`` is removed first, so that a later
    --resume never mixes the two runs); anything else would overwrite ``epoch_N.pth`` and rewind
    ``last_checkpoint`` silently, and is refused."""
    from ..openmmlab.engine.checkpoints import LAST, used_work_dir
    used = used_work_dir(work_dir)
    if not used or resume:
        return
    if not overwrite:
        few = ', '.join(used[:4]) + (', ...' if len(used) > 4 else '')
        raise CheckpointError(
            f'work dir {work_dir!r} already holds a training run ({few}): continue it with '
            '--resume, train into a new folder with --work-dir DIR, or start over in this one '
            'with --overwrite (its checkpoints are then replaced)')
    with contextlib.suppress(FileNotFoundError):  # every rank of a distributed run gets here
        os.remove(osp.join(work_dir, LAST))


def evaluation_dir(checkpoint: str, work_dir: str = None) -> str:
    """Where tools/test.py writes the log and the report of ``checkpoint``: ``work_dir``, or a
    folder beside the checkpoint named after it (``epoch_12.pth`` -> ``epoch_12_test/``), never
    the training run's own dir, whose report it would replace. A folder that holds the report
    of another checkpoint is refused."""
    folder = work_dir or osp.splitext(osp.abspath(checkpoint))[0] + '_test'
    existing = osp.join(folder, JSON_NAME)
    if osp.isfile(existing):
        try:
            with open(existing) as f:
                theirs = json.load(f).get('checkpoint')
        except (OSError, ValueError, AttributeError):
            theirs = '(unreadable)'
        if theirs and osp.abspath(theirs) != osp.abspath(checkpoint):
            raise CheckpointError(
                f'{existing} is the report of another checkpoint ({theirs}); evaluating '
                f'{checkpoint} there would replace it: leave out --work-dir (the report then '
                f'goes beside the checkpoint) or choose another folder')
    return folder
