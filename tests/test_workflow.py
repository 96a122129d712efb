"""tools/train.py and tools/test.py on the synthetic data: every detector x norm trains and
evaluates, --resume ends at the same weights as an uninterrupted run, the report holds the
metrics, and bad data or a bad norm name is a clear error. Images are shrunk to 128 px and runs to
one or two epochs of 4 images with --cfg-options; the code path is the configs' own."""
import json
import os
import shutil

import pytest
import torch

from mm_utils import DETECTORS, NORMS, config_path, run_cli, small_options, tool
from normdet.data import CLASSES, generate_synthetic_coco
from normdet.utils.coco_metrics import PER_CLASS, SUMMARY

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    return generate_synthetic_coco(str(tmp_path_factory.mktemp('tiny_coco')), num_train=4,
                                   num_val=4, image_size=(128, 128))


def train(config, work_dir, data_root, *extra, epochs=1, options=()):
    tool('train').main([config, '--work-dir', str(work_dir), *extra, '--cfg-options',
                        *small_options(config, data_root, epochs=epochs), *options])


def load_checkpoint(path):
    return torch.load(path, map_location='cpu', weights_only=True)  # normdet's allow-list


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('detector', DETECTORS)
def test_train_and_evaluate(detector, norm, tiny_coco, tmp_path):
    train(config_path(detector, norm), tmp_path, tiny_coco)
    ckpt = load_checkpoint(tmp_path / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == 2  # 4 images, 2 per batch
    report = json.loads((tmp_path / 'coco_metrics.json').read_text())
    assert report['norm'] == norm and report['batch'] == dict(per_gpu=2, gpus=1, total=2)
    assert report['dataset']['classes'] == list(CLASSES)
    assert report['checkpoint'].endswith('epoch_1.pth')
    tasks = ('bbox', 'segm') if detector == 'mask_rcnn_r50_fpn' else ('bbox',)
    assert tuple(report['tasks']) == tasks
    for task in tasks:
        summary = report['tasks'][task]['summary']
        assert set(summary) == set(SUMMARY)
        assert 0 <= summary['mAP'] <= 1 and 0 <= summary['AR@100'] <= 1, summary
        assert all(v is None or 0 <= v <= 1 for v in summary.values()), summary  # None: no GT
        assert summary == {k: report['metrics'][f'{task}_{k}'] for k in SUMMARY}
        rows = report['tasks'][task]['per_class']
        assert [r['class'] for r in rows] == list(CLASSES)
        assert all(set(PER_CLASS) <= set(r) for r in rows)
    md = (tmp_path / 'coco_report.md').read_text()
    assert f'| norm | {norm} |' in md and '| bbox |' in md and '| star |' in md


@pytest.mark.parametrize('detector,norm', [('ssdlite', 'MABN'), ('mask_rcnn_r50_fpn', 'DNB')])
def test_resume_is_exact(detector, norm, tiny_coco, tmp_path):
    """2 epochs straight vs 1 epoch, then --resume to 2 in a new runner: identical weights,
    buffers (MABN's ring buffers and counter) and optimizer state. SSD's augmentation draws from
    numpy, Mask R-CNN's samplers from torch: both must be restored for this to hold."""
    config = config_path(detector, norm)
    train(config, tmp_path / 'straight', tiny_coco, '--no-eval', epochs=2)
    train(config, tmp_path / 'resumed', tiny_coco, '--no-eval', epochs=1)
    assert not (tmp_path / 'resumed' / 'epoch_2.pth').exists()
    train(config, tmp_path / 'resumed', tiny_coco, '--no-eval', '--resume', epochs=2)
    a = load_checkpoint(tmp_path / 'straight' / 'epoch_2.pth')
    b = load_checkpoint(tmp_path / 'resumed' / 'epoch_2.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    for pa, pb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert torch.equal(pa['momentum_buffer'], pb['momentum_buffer'])
    # tensors, numbers and strings only: plain torch.load reads them in a process that imported
    # nothing of normdet or mmengine; normdet's reader turns the logged scalars back
    path = str(tmp_path / 'resumed' / 'epoch_2.pth')
    r = run_cli('-c', 'import sys, torch; c = torch.load(sys.argv[1], weights_only=True); '
                "assert 'mmengine' not in sys.modules; print(sorted(c))", path)
    assert r.returncode == 0 and "'message_hub'" in r.stdout, r.stderr[-2000:]
    from mmengine.logging import HistoryBuffer

    from normdet.openmmlab.engine.checkpoints import read_checkpoint
    c = read_checkpoint(path)
    loss = c['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 4
    assert c['normdet']['rng'][0]['numpy'][1].dtype.name == 'uint32'


@pytest.mark.parametrize('detector,batch', [('ssdlite', 2), ('mask_rcnn_r50_fpn', 4)])
def test_channels_last_trains_the_same_model(detector, batch, tiny_coco, tmp_path):
    """``channels_last=True``: the model trains in channels_last memory, to the same weights as in
    NCHW up to float rounding. Mask R-CNN trains one iteration: its proposals (after NMS) may
    differ with the rounding, so its RoI head is held to 1e-3 (its RoI features go through stack
    fix 5, tested exactly in test_stack_fixes.py)."""
    config = config_path(detector, 'DNB')
    options = [f'train_dataloader.batch_size={batch}']
    train(config, tmp_path / 'nchw', tiny_coco, '--no-eval', options=options)
    train(config, tmp_path / 'cl', tiny_coco, '--no-eval', options=options + ['channels_last=True'])
    a = load_checkpoint(tmp_path / 'nchw' / 'epoch_1.pth')['state_dict']
    b = load_checkpoint(tmp_path / 'cl' / 'epoch_1.pth')['state_dict']
    conv = b['backbone.conv1.conv.weight' if detector == 'ssdlite' else 'backbone.conv1.weight']
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert a.keys() == b.keys()
    for k, v in a.items():
        atol = 1e-3 if k.startswith('roi_head.') else 5e-5
        torch.testing.assert_close(b[k], v, rtol=1e-3, atol=atol, msg=k)


def test_test_tool_reevaluates_checkpoint(tiny_coco, tmp_path):
    config = config_path('retinanet_r50_fpn', 'GN')
    train(config, tmp_path / 'train', tiny_coco)
    trained = json.loads((tmp_path / 'train' / 'coco_metrics.json').read_text())
    log = next((tmp_path / 'train').glob('*/*.log')).read_text()
    assert 'evaluated the final weights on the test split: reporting it' in log  # not twice
    ckpt = str(tmp_path / 'train' / 'epoch_1.pth')
    tool('test').main([config, ckpt, '--work-dir', str(tmp_path / 'test'),
                       '--out', str(tmp_path / 'preds.pkl'), '--cfg-options',
                       *small_options(config, tiny_coco)])
    tested = json.loads((tmp_path / 'test' / 'coco_metrics.json').read_text())
    assert tested['checkpoint'] == ckpt and tested['batch']['gpus'] == 1  # read from the ckpt
    assert tested['metrics'] == trained['metrics']  # same weights, same numbers (val == test)
    assert (tmp_path / 'preds.pkl').stat().st_size > 0


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A checkpoint write that fails half-way leaves the previous file intact, and no debris."""
    from mmengine.fileio import get_file_backend
    path = tmp_path / 'epoch_1.pth'
    backend = get_file_backend(str(path))
    backend.put(b'old', str(path))

    def fail(fd):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', fail)
    with pytest.raises(OSError, match='disk full'):
        backend.put(b'new checkpoint', str(path))
    assert path.read_bytes() == b'old' and os.listdir(tmp_path) == ['epoch_1.pth']
    monkeypatch.undo()
    backend.put_text('epoch_1.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert oct((tmp_path / 'last_checkpoint').stat().st_mode & 0o777) != '0o600'


# --- errors a user sees, from the command line -------------------------------------------------

def cli_error(*args):
    r = run_cli('tools/train.py', *args, timeout=300)
    assert r.returncode != 0
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]
    return r.stderr


def test_missing_data_root_is_clear():
    err = cli_error('configs/ssdlite_dnb.py', '--cfg-options', 'data_root=/no/such/coco/')
    assert "dataset root '/no/such/coco/' does not exist" in err
    assert '--cfg-options data_root=/path/to/coco/' in err and 'NORMDET_DATA_ROOT' in err


def test_broken_annotation_file_is_clear(tiny_coco, tmp_path):
    root = shutil.copytree(tiny_coco, tmp_path / 'coco')
    ann = root / 'annotations' / 'instances_val2017.json'
    ann.write_text(ann.read_text()[:1000])  # a truncated download
    err = cli_error('configs/retinanet_r50_fpn_bn.py', '--cfg-options', f'data_root={root}')
    assert f"annotation file '{ann}' is not valid JSON" in err and 're-download' in err


def test_unknown_norm_is_clear(tiny_coco):
    err = cli_error('configs/ssdlite_bn.py', '--cfg-options', 'norm=BatchNrom',
                    f'data_root={tiny_coco}')
    assert "unknown norm 'BatchNrom'; choose one of BN, SyncBN, GN, FRN, MABN, DNB, DNC, RBN" in err


def test_missing_config_is_clear():
    err = cli_error('configs/ssdlite_nonorm.py')
    assert "config 'configs/ssdlite_nonorm.py' not found" in err
