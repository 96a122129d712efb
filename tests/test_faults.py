"""Faults and misuse by family, beyond the catalogue of tests/test_errors.py: a work dir used by
two runs at once, contradicting flags, an output over an input, a missing or corrupt record for
the analysis tools, numbers that must be positive, an interrupted run, non-finite weights."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from mm_utils import REPO, run_cli
from normdet.cli.workdir import locked
from normdet.openmmlab.engine.checkpoints import check_finite
from normdet.utils.errors import CheckpointError

MINI = 'configs/mini/ssdlite_bn.py'
# slow: each test launches the tools (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow


def _one_line(r, *needles, code=1):
    assert r.returncode == code and 'Traceback' not in r.stderr, r.stderr[-3000:]
    for needle in needles:
        assert needle in r.stderr, r.stderr[-3000:]


def test_a_work_dir_in_use_is_refused(tmp_path):
    with locked(str(tmp_path)):
        r = run_cli('tools/train.py', MINI, '--work-dir', str(tmp_path), timeout=300)
    _one_line(r, 'is in use by another run', f'pid {os.getpid()}')
    assert sorted(os.listdir(tmp_path)) == ['.normdet.lock']  # nothing of the second run
    with locked(str(tmp_path)):  # released when the holder ends
        pass


@pytest.mark.parametrize('argv,message', [
    (['tools/train.py', MINI, '--resume', '--overwrite'], 'contradict each other'),
    (['tools/sweep.py', '--detector', 'mini/ssdlite', '--norms', 'BN', '--batch', '2',
      '--epochs', '0', '--work-dir', 'x'], 'argument --epochs: 0 is not at least 1'),
    (['tools/study.py', '--jobs', '-1', '--report-only'], 'argument --jobs'),
])
def test_arguments_are_checked(argv, message):
    r = run_cli(*argv, timeout=300)
    assert r.returncode in (1, 2) and 'Traceback' not in r.stderr and message in r.stderr, \
        r.stderr[-3000:]


@pytest.mark.parametrize('tool', ['deploy', 'test'])
def test_no_tool_writes_over_its_input(tmp_path, tool):
    ckpt = tmp_path / ('epoch_1.pkl' if tool == 'test' else 'epoch_1.pth')
    ckpt.write_bytes(b'the training checkpoint')
    r = run_cli(f'tools/{tool}.py', MINI, str(ckpt), '--out', str(ckpt), timeout=300)
    _one_line(r, "is one of this command's inputs")
    assert ckpt.read_bytes() == b'the training checkpoint'


def test_study_without_runs_writes_nothing(tmp_path):
    results = os.path.join(REPO, 'docs', 'results.md')
    before = open(results).read(), os.path.getmtime(results)
    r = run_cli('tools/study.py', '--report-only', '--work-dir', str(tmp_path / 'missing'),
                timeout=300)
    _one_line(r, 'does not exist', 'is left as it is')
    (tmp_path / 'empty').mkdir()
    r = run_cli('tools/study.py', '--report-only', '--work-dir', str(tmp_path / 'empty'),
                timeout=300)
    _one_line(r, 'no finished run of the plan')
    assert (open(results).read(), os.path.getmtime(results)) == before


def test_a_corrupt_record_is_named(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'coco_metrics.json').write_text('{"metrics": {"bbox_mAP": 0.1')  # truncated
    r = run_cli('tools/report.py', str(tmp_path), timeout=300)
    _one_line(r, f'{run / "coco_metrics.json"} is not valid JSON')


def test_non_finite_weights_are_named():
    weights = dict(state_dict={'backbone.conv.weight': torch.ones(2, 2),
                               'head.cls.weight': torch.tensor([1.0, float('nan')]),
                               'head.step': torch.tensor(3)})
    with pytest.raises(CheckpointError, match=r"non-finite weights .* 1 tensor\(s\): "
                                              r'head.cls.weight'):
        check_finite(weights, 'epoch_3.pth')
    check_finite(dict(state_dict={'w': torch.ones(2)}), 'ok.pth')


def test_an_interrupted_run_says_how_to_resume(tmp_path):
    """Ctrl-C during training: one line, status 130, and the work dir resumes."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    p = subprocess.Popen([sys.executable, 'tools/train.py', MINI, '--work-dir', str(tmp_path),
                          '--cfg-options', 'default_hooks.logger.interval=1'], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + 300
    for line in p.stdout:
        lines.append(line)
        if 'Epoch(train)' in line or time.monotonic() > deadline:
            break
    p.send_signal(signal.SIGINT)
    out = lines + p.stdout.readlines()
    assert p.wait(timeout=120) == 130, ''.join(out[-30:])
    text = ''.join(out)
    assert '[normdet] interrupted (Ctrl-C)' in text and '--resume' in text
    assert 'Traceback' not in text and 'KeyboardInterrupt' not in text, text[-3000:]


def test_a_resume_that_overrides_the_lr_says_so(tmp_path):
    """--resume restores the optimizer (its LR and schedule): a changed LR on the command line is
    said to be unused, and the run goes on from the checkpoint."""
    small = ['train_cfg.max_epochs=1', 'synthetic_data=tiny', 'train_dataloader.batch_size=2']
    r = run_cli('tools/train.py', MINI, '--work-dir', str(tmp_path), '--no-eval',
                '--cfg-options', *small, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_cli('tools/train.py', MINI, '--work-dir', str(tmp_path), '--resume', '--no-eval',
                '--cfg-options', *small[1:], 'train_cfg.max_epochs=2',
                'optim_wrapper.optimizer.lr=0.5', 'param_scheduler.1.end=2',
                'param_scheduler.1.T_max=2', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    found = re.search(r"\[normdet\] warning: --resume: the checkpoint trained with base LR "
                      r"([0-9.e-]+); this config's ([0-9.e-]+) is not used", r.stderr)
    assert found, r.stderr[-3000:]  # both auto-scaled to the batch: 0.5 / 0.002 all the same
    assert float(found[2]) / float(found[1]) == pytest.approx(0.5 / 0.002)
    r = run_cli('tools/train.py', MINI, '--work-dir', str(tmp_path), '--resume', '--no-eval',
                '--cfg-options', *small[1:], 'train_cfg.max_epochs=3',
                'param_scheduler.1.end=3', 'param_scheduler.1.T_max=3', timeout=600)
    assert r.returncode == 0 and 'is not used' not in r.stderr, r.stderr[-3000:]
