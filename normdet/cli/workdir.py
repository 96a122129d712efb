"""What a run may write where: a training run never silently replaces another's checkpoints, and
an evaluation never replaces the report of another checkpoint."""
import contextlib
import json
import os
import os.path as osp

from ..utils.errors import CheckpointError
from .report import JSON_NAME


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
