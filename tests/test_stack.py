"""normdet.stack: the installed stack passes the check, a missing or unsupported package is named
with the fix (instead of mmcv's ImportError), and the report's versions and commit are real."""
import subprocess
import sys

import mmcv
import torch

from mm_utils import REPO
from normdet import stack

GOOD = dict(torch='2.14.1+cu130', mmengine='0.10.7', mmcv='2.1.0', mmdet='3.3.0')


def test_installed_stack_passes():
    assert stack.problems() == []


def test_missing_and_unsupported_packages_are_named():
    assert stack.problems(GOOD, mmcv_ops=True) == []
    assert stack.problems(dict(GOOD, mmcv='2.0.0rc4', torch='2.1.0'), mmcv_ops=True) == []
    found = stack.problems(dict(GOOD, mmcv=None), mmcv_ops=False)
    assert found == ['mmcv is not installed (normdet needs mmcv>=2.0.0rc4,<2.2.0)']
    found = stack.problems(dict(GOOD, mmcv='2.2.0', torch='2.0.1'), mmcv_ops=True)
    assert found == ['torch 2.0.1 is installed; normdet needs torch>=2.1',
                     'mmcv 2.2.0 is installed; normdet needs mmcv>=2.0.0rc4,<2.2.0']
    assert 'without its compiled ops' in stack.problems(GOOD, mmcv_ops=False)[0]


def test_tool_without_mmcv_says_how_to_install(tmp_path):
    """A clone whose stack lacks mmcv (as after a plain `pip install -e .`): the tool's first line
    of work is the check, which exits 1 with the fix, not mmcv's ImportError."""
    missing = 'mmcv is not installed (normdet needs mmcv>=2.0.0rc4,<2.2.0)'
    code = ('import sys; from normdet import stack; '
            f'stack.problems = lambda: [{missing!r}]; '
            'sys.argv = ["tools/train.py", "configs/ssdlite_bn.py"]; '
            'import runpy; runpy.run_path("tools/train.py", run_name="__main__")')
    r = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert '[normdet] error: mmcv is not installed' in r.stderr
    assert 'bash tools/setup_env.sh' in r.stderr and 'GPU cluster' in r.stderr


def test_versions_and_commit():
    v = stack.versions()
    assert v['torch'] == torch.__version__ and v['mmcv'] == mmcv.__version__
    head = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'], capture_output=True,
                          text=True).stdout.strip()
    assert stack.git_commit().split()[0] == head
    assert stack.git_commit(str(REPO) + '/normdet') is None  # not a clone's root
