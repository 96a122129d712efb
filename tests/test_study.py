"""tools/report.py and tools/sweep.py: aggregation and the paired t-test on fixed metric files
give known values, a diverged run is flagged, and a 2 x 2 sweep on CPU writes report and plots."""
import json
import math
import os
import os.path as osp

import pytest

from mm_utils import REPO, run_cli, small_options
from normdet.data import generate_synthetic_coco
from normdet.study import aggregate, collect, paired_t_test, write_study

APS = {('BN', 0): 0.30, ('BN', 1): 0.32, ('BN', 2): 0.31,
       ('DNB', 0): 0.32, ('DNB', 1): 0.35, ('DNB', 2): 0.32}


def fake_run(root, norm, seed, ap=None, status=None, losses=(2.0, 1.5, 1.0)):
    d = osp.join(root, f'ssdlite_{norm.lower()}_b2_s{seed}')
    os.makedirs(osp.join(d, '20260101_000000', 'vis_data'))
    if ap is not None:
        with open(osp.join(d, 'coco_metrics.json'), 'w') as f:
            json.dump(dict(config='configs/ssdlite_x.py', norm=norm, seed=seed,
                           batch=dict(per_gpu=2, gpus=1, total=2),
                           metrics=dict(bbox_mAP=ap, bbox_mAP_50=ap + 0.2)), f)
    if status is not None:
        with open(osp.join(d, 'sweep_run.json'), 'w') as f:
            json.dump(dict(detector='ssdlite', norm=norm, batch=2, seed=seed, status=status), f)
    with open(osp.join(d, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        for i, loss in enumerate(losses):
            f.write(json.dumps(dict(loss=loss, lr=0.01 * (i + 1), iter=10 * (i + 1))) + '\n')
    return d


@pytest.fixture
def study(tmp_path):
    for (norm, seed), ap in APS.items():
        fake_run(str(tmp_path), norm, seed, ap)
    fake_run(str(tmp_path), 'FRN', 0, status='failed')
    fake_run(str(tmp_path), 'FRN', 1, losses=(2.0, float('nan')), status='diverged')
    return str(tmp_path)


def test_paired_t_test_known_value():
    # d = (0.02, 0.03, 0.01): mean 0.02, sd 0.01, t = 2 sqrt(3); df 2: p = (1 - t / sqrt(t^2 + 2)) / 2
    t, p, n = paired_t_test([0.32, 0.35, 0.32], [0.30, 0.32, 0.31])
    assert n == 3 and t == pytest.approx(2 * math.sqrt(3))
    assert p == pytest.approx(0.5 * (1 - t / math.sqrt(t * t + 2)))
    assert paired_t_test([0.5, 0.4], [0.6, 0.5])[1] == pytest.approx(1.0)  # worse every time


def test_aggregate(study):
    runs = collect([study])
    assert len(runs) == 8
    rows = {r['norm']: r for r in aggregate(runs, baseline='BN')}
    assert rows['BN']['mean'] == pytest.approx(0.31) and rows['BN']['std'] == pytest.approx(0.01)
    assert rows['DNB']['mean'] == pytest.approx(0.33) and rows['DNB']['n'] == 3
    assert rows['DNB']['pairs'] == 3 and rows['DNB']['p'] == pytest.approx(0.03709, abs=1e-4)
    assert rows['FRN']['diverged'] == 1 and rows['FRN']['failed'] == 1 and rows['FRN']['n'] == 0


def test_report_flags_diverged(study, tmp_path):
    path = write_study([study], str(tmp_path / 'out'))
    md = open(path).read()
    assert '- diverged: ssdlite FRN batch 2 seed 1' in md and '- failed: ssdlite FRN' in md
    assert '| ssdlite | DNB | 2 | 3 | 33.0 | 1.7 | 0 | 0 | 0.0371 | 3 |' in md
    for png in ('bbox_ap_by_norm.png', 'bbox_ap_vs_batch.png', 'loss_curves.png', 'lr_curves.png'):
        assert osp.getsize(tmp_path / 'out' / png) > 10000 and f'({png})' in md


def test_sweep_2x2_on_cpu(tmp_path):
    """GN and BN at 1 and 2 images per GPU: BN with a batch of 1 cannot train (SSD's 1x1 maps give
    one value per channel) and is reported as failed while the sweep goes on; a second call skips
    what finished."""
    data = generate_synthetic_coco(str(tmp_path / 'coco'), num_train=4, num_val=2,
                                   image_size=(128, 128))
    opts = [o for o in small_options(osp.join(REPO, 'configs', 'ssdlite_bn.py'), data)
            if not o.startswith(('train_dataloader.batch_size', 'train_cfg.', 'experiment_name',
                                 'visualizer.name'))]
    args = ['tools/sweep.py', '--detector', 'ssdlite', '--norms', 'BN', 'GN', '--batch', '1', '2',
            '--epochs', '1', '--work-dir', str(tmp_path / 'sweep'), '--data-root', data,
            '--cfg-options', *opts]
    r = run_cli(*args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '[sweep 4/4]' in r.stdout and 'about' in r.stdout
    status = {d: json.load(open(tmp_path / 'sweep' / d / 'sweep_run.json'))['status']
              for d in os.listdir(tmp_path / 'sweep') if d.startswith('ssdlite')}
    assert status == {'ssdlite_bn_b1_s0': 'failed', 'ssdlite_bn_b2_s0': 'done',
                      'ssdlite_gn_b1_s0': 'done', 'ssdlite_gn_b2_s0': 'done'}
    md = (tmp_path / 'sweep' / 'report' / 'report.md').read_text()
    assert '- failed: ssdlite BN batch 1 seed 0' in md and '| ssdlite | GN | 1 | 1 |' in md
    assert osp.getsize(tmp_path / 'sweep' / 'report' / 'bbox_ap_vs_batch.png') > 10000
    again = run_cli(*args, timeout=600)
    assert again.stdout.count('finished before, skipped') == 3
