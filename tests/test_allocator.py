"""normdet.utils.allocator: with glibc's malloc set to keep freed memory, a real training step takes
no page faults after the first; with glibc's defaults it faults thousands of pages in again every
step. Each case runs in a fresh process (the setting is per process and cannot be undone)."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')]

# a real training step: SSDLite-mini-DN-B at 2 images on one thread (the study's runs), as
# tools/benchmark_train.py times it; prints whether the setting took and the faults per step
STEPS = r'''
import argparse, resource, sys, torch
from normdet.utils.allocator import keep_freed_memory
applied = keep_freed_memory()
torch.set_num_threads(1)
sys.path.insert(0, 'tools')
import benchmark_train
from mmdet.utils import register_all_modules
register_all_modules()
args = argparse.Namespace(device='cpu', amp=False, cfg_options={'train_dataloader.batch_size': 2})
bench = benchmark_train.Bench('configs/mini/ssdlite_dnb.py', args)
for _ in range(3):
    bench.step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    bench.step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 4)
'''


def _python(code: str, malloc: str) -> list:
    """The words ``code`` prints, run in a fresh interpreter with NORMDET_MALLOC=``malloc``."""
    env = dict(os.environ, NORMDET_MALLOC=malloc)
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          cwd=REPO, check=True).stdout.split()


def _faults_per_step(malloc: str):
    out = _python(STEPS, malloc)
    return out[-2] == 'True', int(out[-1])


@pytest.fixture(scope='module')
def faults():
    return {m: _faults_per_step(m) for m in ('keep', 'default')}


def test_a_training_step_takes_no_page_faults(faults):
    applied, per_step = faults['keep']
    if not applied:
        pytest.skip('not glibc: mallopt is unavailable')
    # glibc's defaults: thousands a step (4,800-9,100 measured, docs/performance.md)
    assert per_step < 500, f'{per_step} page faults a training step with freed memory kept'


def test_glibc_defaults_fault_pages_in_every_step(faults):
    """The control: NORMDET_MALLOC=default keeps glibc's behaviour, which faults pages in again
    every step (so the test above measures the setting, not the machine or the model)."""
    applied, per_step = faults['default']
    assert not applied
    if not faults['keep'][0]:
        pytest.skip('not glibc')
    assert per_step > 10 * max(faults['keep'][1], 100), (
        f'{per_step} page faults a step with glibc defaults against {faults["keep"][1]} kept')


def test_the_tools_set_it():
    from normdet.cli import run
    from normdet.openmmlab.engine import runner
    assert run.keep_freed_memory.__module__ == 'normdet.utils.allocator'
    assert runner.keep_freed_memory.__module__ == 'normdet.utils.allocator'
    code = ('import normdet.cli.run as a, normdet.utils.allocator as m\n'
            'a.run_tool(lambda: None)\nprint(m.keep_freed_memory.cache_info().currsize)')
    assert _python(code, 'keep')[-1] == '1'  # run_tool called it before the tool's main
