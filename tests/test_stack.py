"""normdet.cli.stack: the installed stack passes the check, a missing or unsupported package is named
with the fix (instead of mmcv's ImportError), and the report's versions and commit are real."""
import os
import subprocess
import sys

import mmcv
import pytest
import torch

from mm_utils import REPO
from normdet.cli import stack

GOOD = dict(torch='2.14.1+cu130', mmengine='0.10.7', mmcv='2.1.0', mmdet='3.3.0')


def test_installed_stack_passes():
    assert stack.problems() == []


def test_missing_and_unsupported_packages_are_named():
    assert stack.problems(GOOD, mmcv_ops=True) == []
    assert stack.problems(dict(GOOD, mmcv='2.1.0', torch='2.11.0'), mmcv_ops=True) == []
    found = stack.problems(dict(GOOD, mmcv=None), mmcv_ops=False)
    assert found == ['mmcv is not installed (normdet needs mmcv>=2.1.0,<2.2.0)']
    found = stack.problems(dict(GOOD, mmcv='2.2.0', torch='2.0.1'), mmcv_ops=True)
    assert found == ['torch 2.0.1 is installed; normdet needs torch>=2.11,<2.15',
                     'mmcv 2.2.0 is installed; normdet needs mmcv>=2.1.0,<2.2.0']
    found = stack.problems(dict(GOOD, mmdet='3.1.0', torch='2.15.0'), mmcv_ops=True)
    assert found == ['torch 2.15.0 is installed; normdet needs torch>=2.11,<2.15',
                     'mmdet 3.1.0 is installed; normdet needs mmdet>=3.3.0,<3.4']
    assert 'without its compiled ops' in stack.problems(GOOD, mmcv_ops=False)[0]


def test_tool_without_mmcv_says_how_to_install(tmp_path):
    """A clone whose stack lacks mmcv (as after a plain `pip install -e .`): the tool's first line
    of work is the check, which exits 1 with the fix, not mmcv's ImportError."""
    missing = 'mmcv is not installed (normdet needs mmcv>=2.1.0,<2.2.0)'
    code = ('import sys; from normdet.cli import stack; '
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


# --- broken stacks, as a user's machine has them: fake distributions ahead on sys.path ----------

MMDET_33_ON_MMCV_22 = ('raise AssertionError("MMCV==2.2.0 is used but incompatible. Please install '
                       'mmcv>=2.0.0rc4, <2.2.0.")')


def _fake_package(site, name: str, version: str, init: str = '', files=()) -> None:
    """A package ``name`` (its ``__init__`` runs ``init``) with a dist-info of ``version`` that
    lists ``files`` (mmcv's compiled ops are a ``mmcv/_ext*.so`` there)."""
    pkg = site / name
    pkg.mkdir()
    (pkg / '__init__.py').write_text(init + f'\n__version__ = {version!r}\n')
    info = site / f'{name}-{version}.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    record = [f'{name}/__init__.py,,', *(f'{f},,' for f in files), f'{info.name}/METADATA,,']
    (info / 'RECORD').write_text('\n'.join(record) + '\n')


def _tool_on(site, *argv):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize('tool', [['tools/train.py', 'configs/ssdlite_dnb.py'],
                                  ['tools/test.py', 'configs/ssdlite_dnb.py', 'x.pth'],
                                  ['tools/deploy.py', 'configs/ssdlite_mabn.py'],
                                  ['tools/sweep.py', '--detector', 'mini/ssdlite', '--norms', 'BN']])
def test_mmdet_that_refuses_its_mmcv_is_named_before_it_is_imported(tmp_path, tool):
    """mmcv 2.2 installed: mmdet 3.3 raises its own AssertionError on import. The check runs
    first and names the package and the fix; mmdet is never imported."""
    _fake_package(tmp_path, 'mmcv', '2.2.0', files=['mmcv/_ext.cpython-311-x86_64-linux-gnu.so'])
    _fake_package(tmp_path, 'mmdet', '3.3.0', init=MMDET_33_ON_MMCV_22)
    r = _tool_on(tmp_path, *tool)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert ('[normdet] error: mmcv 2.2.0 is installed; normdet needs mmcv>=2.1.0,<2.2.0'
            in r.stderr)
    assert 'bash tools/setup_env.sh' in r.stderr


def test_mmcv_lite_is_named_before_mmcv_ops_is_imported(tmp_path):
    """mmcv-lite (no compiled ops): importing the glue would fail on mmcv.ops; the check says
    what is missing first."""
    _fake_package(tmp_path, "mmcv", "2.1.0")
    (tmp_path / 'mmcv' / 'ops.py').write_text('raise ImportError("libmmcv_ext.so: not found")\n')
    r = _tool_on(tmp_path, 'tools/train.py', 'configs/ssdlite_bn.py')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert 'mmcv is installed without its compiled ops' in r.stderr


def test_layers_norms_and_conversion_need_torch_only():
    """``import normdet`` and its plain-PyTorch levels (the layers, the norm table,
    convert_module, fold_norms), the synthetic data and the study, with mmcv, mmdet and mmengine
    made impossible to import: nothing of them is needed, and nothing of them is imported."""
    code = '''
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmcv', 'mmdet', 'mmengine'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, NotInstalled())
import torch, torchvision
import normdet, normdet.layers, normdet.norms, normdet.data, normdet.study, normdet.cli.report
from normdet import convert_module, fold_norms
from normdet.norms import NORMS, get_norm
for name in NORMS:
    get_norm(name).build(8).train()(torch.randn(2, 8, 4, 4)).sum().backward()
for name in ('MABN', 'RBN'):  # BN-pretrained weights into each norm, then folded for inference
    model = torchvision.models.resnet18(num_classes=4)
    model = convert_module(model, name).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert fold_norms(model) > 0
        torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-4)
import normdet.data.synthetic, normdet.study.runs
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmcv', 'mmdet', 'mmengine'))
assert not loaded, loaded
try:
    normdet.convert_norm
except ModuleNotFoundError as e:
    print('glue:', e.name)
print('ok')
'''
    r = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # the glue's names stay reachable from normdet, and say what they need
    assert r.stdout.split() == ['glue:', 'mmdet', 'ok'], r.stdout
