"""Progress a person can wait on: training lines at least every 20 iterations or every
``log_interval_s`` seconds, validation and testing with an ETA, and the config in the log file
rather than on the console (normdet.openmmlab.engine.progress, NormDetRunner._log_env), and a COCO
config that falls back to the synthetic dataset says so on the console."""
import glob
import os.path as osp
import re

import pytest

from mm_utils import run_cli


TINY = ['synthetic_data=tiny', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=1']


@pytest.mark.slow  # it trains a detector in a new process
@pytest.mark.parametrize('interval_s,train_lines', [(0, 8), (10 ** 6, 1)])
def test_progress_by_time_and_by_iterations(tmp_path, interval_s, train_lines):
    """16 tiny images at 2 per batch: 8 iterations. With the 50-iteration logger interval of a
    full config (lowered to 20) a line comes at the end of the epoch only, unless the time
    interval is due; validation (8 images, 1 per batch) says what comes, then its ETA."""
    r = run_cli('tools/train.py', 'configs/mini/ssdlite_bn.py', '--work-dir', str(tmp_path),
                '--cfg-options', *TINY, 'default_hooks.logger.interval=50',
                f'log_interval_s={interval_s}', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    console = r.stdout + r.stderr
    assert len(re.findall(r'Epoch\(train\) +\[1\]\[ ?\d/8\]', console)) == train_lines, console
    assert 'Epoch(val): 8 images in 8 batches ...' in console
    etas = re.findall(r'Epoch\(val\) \[(\d)/8\]  eta: \d+:\d\d:\d\d  time: [\d.]+ s/batch', console)
    assert len(etas) == (7 if interval_s == 0 else 0), console[-3000:]
    assert re.search(r'Epoch\(val\): 8 batches in \d+:\d\d:\d\d \([\d.]+ s/batch\); scoring',
                     console)
    # the config: in the text log and the work dir, not on the console
    assert 'train_dataloader = dict(' not in console
    assert 'Config: written to the log file, and dumped to' in console
    log = glob.glob(osp.join(tmp_path, '*', '*.log'))[0]
    assert 'train_dataloader = dict(' in open(log).read()
    assert osp.isfile(tmp_path / 'ssdlite_bn.py')


@pytest.mark.parametrize('config,options,said', [
    ('configs/ssdlite_bn.py', [], True),                    # COCO config, no data root
    ('configs/mini/ssdlite_bn.py', [], False),              # made for the embedded benchmark
    ('configs/retinanet_r50_fpn_bn.py', ['data_root=synthetic'], True),
])
def test_a_coco_config_on_synthetic_data_says_so(config, options, said, monkeypatch):
    from normdet.cli.config import load_config
    from normdet.openmmlab.engine.runner import synthetic_note
    monkeypatch.delenv('NORMDET_DATA_ROOT', raising=False)
    note = synthetic_note(load_config(config, dict(o.split('=', 1) for o in options)))
    assert bool(note) == said
    if said:
        assert 'synthetic dataset' in note and '--cfg-options data_root=/path/to/coco/' in note
