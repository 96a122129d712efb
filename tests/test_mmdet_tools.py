"""MMDetection's conventions on a normdet run: tools/test.py's --show, --wait-time and --tta,
tools/train.py's --tensorboard (scalars and images) and --auto-scale-lr (the LR a config is meant
for stays at its own batch), strict JSON logs, mmdet's own analysis tools (eval_metric.py,
analyze_logs.py) on a normdet work dir, and every tool running its own clone's normdet."""
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.utils import get_installed_path

from mm_utils import REPO, config_path, run_cli, small_options, tool
from normdet.data import generate_synthetic_coco

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow

MMDET_TOOLS = osp.join(get_installed_path('mmdet'), '.mim', 'tools', 'analysis_tools')


def strict(text):
    def reject(constant):
        raise ValueError(f'{constant} is not JSON')
    return [json.loads(line, parse_constant=reject) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    return generate_synthetic_coco(str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=4,
                                   image_size=(128, 128))


@pytest.fixture(scope='module')
def trained(tiny_coco, tmp_path_factory):
    """SSDLite-BN, 1 epoch with a validation, logged for TensorBoard too (where installed)."""
    work_dir = tmp_path_factory.mktemp('ssdlite_bn')
    config = config_path('ssdlite', 'BN')
    tensorboard = ['--tensorboard'] if importlib.util.find_spec('tensorboard') else []
    tool('train').main([config, '--work-dir', str(work_dir), *tensorboard, '--cfg-options',
                        *small_options(config, tiny_coco), 'train_cfg.val_interval=1',
                        'default_hooks.visualization.interval=1'])
    return work_dir


def test_tensorboard_logs_scalars_and_images(trained):
    pytest.importorskip('tensorboard')  # installed by tools/setup_env.sh
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = glob.glob(str(trained / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0])
    acc.Reload()
    assert {'loss', 'lr', 'coco/bbox_mAP'} <= set(acc.Tags()['scalars'])
    assert acc.Tags()['images'] == ['val_img']  # the validation's drawn predictions
    assert len(acc.Scalars('loss')) == 2  # both iterations


def test_logs_are_strict_json(trained):
    """Size ranges without ground truth (no large objects at 128 px) log null, not NaN."""
    vis = next(trained.glob('*/vis_data'))
    rows = strict((vis / 'scalars.json').read_text())
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert val and val[-1]['coco/bbox_mAP_l'] is None
    stamp = vis.parent.name
    assert strict((vis / f'{stamp}.json').read_text()) == rows


def test_tta_flips_each_image(trained, tiny_coco, tmp_path):
    config = config_path('ssdlite', 'BN')
    tool('test').main([config, str(trained / 'epoch_1.pth'), '--tta', '--work-dir',
                       str(tmp_path), '--cfg-options', *small_options(config, tiny_coco)])
    report = json.loads((tmp_path / 'coco_metrics.json').read_text())
    assert report['model'].endswith('+ TTA (DetTTAModel)')
    assert 0 <= report['metrics']['bbox_mAP'] <= 1
    assert strict(next(tmp_path.glob('*/*.json')).read_text())  # the test run's JSON log


def test_tta_without_a_tta_config_is_clear(trained):
    r = run_cli('tools/test.py', config_path('mask_rcnn_r50_fpn', 'BN'),
                str(trained / 'epoch_1.pth'), '--tta', timeout=300)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert '--tta needs tta_model and tta_pipeline in the config' in r.stderr


def test_show_without_display_is_clear(trained):
    """--show is its own flag (no longer taken for --show-dir); without a display it says how to
    save the images instead."""
    env = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY')}
    r = run_cli('tools/test.py', config_path('ssdlite', 'BN'), str(trained / 'epoch_1.pth'),
                '--show', '--wait-time', '0.5', env=env, timeout=300)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert '--show needs a display' in r.stderr and '--show-dir DIR' in r.stderr


def test_mmdet_analysis_tools_on_a_work_dir(trained, tiny_coco, tmp_path):
    """mmdet's eval_metric.py on the dumped config (self-contained: data resolved) and the
    predictions of tools/test.py --out; analyze_logs.py (seaborn) on the JSON log."""
    pytest.importorskip('seaborn')  # installed by tools/setup_env.sh
    config = config_path('ssdlite', 'BN')
    preds = tmp_path / 'preds.pkl'
    tool('test').main([config, str(trained / 'epoch_1.pth'), '--out', str(preds), '--work-dir',
                       str(tmp_path / 'test'), '--cfg-options', *small_options(config, tiny_coco)])
    dump = trained / 'ssdlite_bn.py'
    assert Config.fromfile(str(dump)).data_root == tiny_coco  # the resolved data, not None
    r = subprocess.run([sys.executable, osp.join(MMDET_TOOLS, 'eval_metric.py'), str(dump),
                        str(preds)], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    tested = json.loads((tmp_path / 'test' / 'coco_metrics.json').read_text())['metrics']
    got = re.search(r"'coco/bbox_mAP': ([-0-9.e]+)", r.stdout)
    assert got and float(got.group(1)) == pytest.approx(tested['bbox_mAP'], abs=1e-12), r.stdout
    log = next(trained.glob('*/vis_data/2*.json'))
    r = subprocess.run([sys.executable, osp.join(MMDET_TOOLS, 'analyze_logs.py'), 'plot_curve',
                        str(log), '--keys', 'loss', '--out', str(tmp_path / 'loss.png')],
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / 'loss.png').stat().st_size > 5000


def test_auto_scale_lr_keeps_the_lr_at_the_configs_own_batch(tiny_coco, tmp_path):
    """The quick start's AdamW 2e-3 is meant for its batch of 16 in one process: --auto-scale-lr
    at that batch leaves it (an inherited base_batch_size of 192 turned it into 8.3e-5)."""
    config = osp.join(REPO, 'configs', 'ssdlite_dnb_quickstart.py')
    cfg = Config.fromfile(config)
    assert cfg.auto_scale_lr.base_batch_size == cfg.train_dataloader.batch_size
    opts = [o for o in small_options(config, tiny_coco)
            if not o.startswith('train_dataloader.batch_size')]
    tool('train').main([config, '--work-dir', str(tmp_path), '--auto-scale-lr', '--no-eval',
                        '--cfg-options', *opts])
    ckpt = torch.load(next(tmp_path.glob('epoch_*.pth')), map_location='cpu', weights_only=True)
    lrs = {g['initial_lr'] for g in ckpt['optimizer']['param_groups']}
    assert lrs == {cfg.optim_wrapper.optimizer.lr}


def test_every_tool_runs_its_own_clone(tmp_path):
    """A second clone's tools run that clone's normdet, even when the environment (PYTHONPATH
    here, an editable install in practice) points at another clone."""
    clone = tmp_path / 'clone'
    for folder in ('normdet', 'tools', 'configs'):
        shutil.copytree(osp.join(REPO, folder), clone / folder,
                        ignore=shutil.ignore_patterns('__pycache__'))
    with open(clone / 'normdet' / '__init__.py', 'a') as f:
        f.write("\nimport sys as _sys\n_sys.stderr.write(f'normdet from {__file__}\\n')\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    tools = sorted(glob.glob(osp.join(REPO, 'tools', '*.py')))
    assert len(tools) >= 6
    procs = {osp.basename(t): subprocess.Popen(
        [sys.executable, str(clone / 'tools' / osp.basename(t)), '--help'], cwd=str(tmp_path),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for t in tools}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err[-2000:])
        assert f"normdet from {clone / 'normdet' / '__init__.py'}" in err, (name, err[-2000:])
