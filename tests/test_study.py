"""tools/report.py and tools/sweep.py: aggregation and the paired t-test on fixed metric files
give known values, a diverged run is flagged, runs are grouped by what their reports (or, without
one, their dumped configs) say (duplicates and skipped folders listed), and a 2 x 2 sweep on CPU
writes report and plots, shows progress and keys its runs by their options."""
import argparse
import dataclasses
import datetime
import json
import math
import os
import os.path as osp
import re
import sys
import time

import pytest

from mm_utils import REPO, run_cli, small_options, tool
from normdet.data import generate_synthetic_coco
from normdet.study import aggregate, collect, paired_t_test, read_run, write_study
from normdet.utils.errors import ConfigError

APS = {('BN', 0): 0.30, ('BN', 1): 0.32, ('BN', 2): 0.31,
       ('DNB', 0): 0.32, ('DNB', 1): 0.35, ('DNB', 2): 0.32}
DATA = '/data/synthetic_coco'


def fake_run(root, norm, seed, ap=None, status=None, losses=(2.0, 1.5, 1.0), name=None,
             data_root=DATA, mtime=None):
    d = osp.join(root, name or f'run_{norm.lower()}_b2_s{seed}')
    os.makedirs(osp.join(d, '20260101_000000', 'vis_data'))
    if ap is not None:
        path = osp.join(d, 'coco_metrics.json')
        with open(path, 'w') as f:
            json.dump(dict(config='configs/ssdlite_x.py', detector='SSD MobileNetV2', norm=norm,
                           seed=seed, batch=dict(per_gpu=2, gpus=1, total=2),
                           dataset=dict(data_root=data_root),
                           schedule=dict(by='epoch', max_epochs=24, dataset_repeats=None),
                           metrics=dict(bbox_mAP=ap, bbox_mAP_50=ap + 0.2,
                                        bbox_mAP_75=ap - 0.1)), f)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    if status is not None:
        with open(osp.join(d, 'sweep_run.json'), 'w') as f:
            json.dump(dict(detector='SSD MobileNetV2', norm=norm, batch=2, seed=seed,
                           status=status, data_root=data_root), f)
    with open(osp.join(d, '20260101_000000', 'vis_data', 'scalars.json'), 'w') as f:
        for i, loss in enumerate(losses):
            f.write(json.dumps(dict(loss=loss, lr=0.01 * (i + 1), iter=10 * (i + 1))) + '\n')
    return d


@pytest.fixture
def study(tmp_path):
    for (norm, seed), ap in APS.items():
        fake_run(str(tmp_path), norm, seed, ap, mtime=1e9)
    fake_run(str(tmp_path), 'FRN', 0, status='failed', data_root=DATA)
    fake_run(str(tmp_path), 'FRN', 1, losses=(2.0, float('nan')), status='diverged')
    return str(tmp_path)


def reject(constant):
    raise ValueError(f'{constant} is not strict JSON')


def test_paired_t_test_known_value():
    # d = (0.02, 0.03, 0.01): mean 0.02, sd 0.01, t = 2 sqrt(3)
    # df 2: p = (1 - t / sqrt(t^2 + 2)) / 2
    t, p, n = paired_t_test([0.32, 0.35, 0.32], [0.30, 0.32, 0.31])
    assert n == 3 and t == pytest.approx(2 * math.sqrt(3))
    assert p == pytest.approx(0.5 * (1 - t / math.sqrt(t * t + 2)))
    assert paired_t_test([0.5, 0.4], [0.6, 0.5])[1] == pytest.approx(1.0)  # worse every time
    assert math.isnan(paired_t_test([0.5], [0.4])[1])  # one pair: no test


def test_aggregate(study):
    runs = collect([study])
    assert len(runs) == 8
    rows = {r['norm']: r for r in aggregate(runs, baseline='BN')}
    assert rows['BN']['mean'] == pytest.approx(0.31) and rows['BN']['std'] == pytest.approx(0.01)
    assert rows['BN']['AP50'] == pytest.approx(0.51) and rows['BN']['AP75'] == pytest.approx(0.21)
    assert rows['DNB']['mean'] == pytest.approx(0.33) and rows['DNB']['n'] == 3
    assert rows['DNB']['pairs'] == 3 and rows['DNB']['p'] == pytest.approx(0.03709, abs=1e-4)
    assert rows['FRN']['diverged'] == 1 and rows['FRN']['failed'] == 1 and rows['FRN']['n'] == 0
    assert {r['detector'] for r in runs} == {'SSD MobileNetV2'}  # from the report, not the name


def test_report_flags_diverged(study, tmp_path):
    path = write_study([study], str(tmp_path / 'out'))
    md = open(path).read()
    assert '- diverged: SSD MobileNetV2 FRN batch 2 seed 1' in md
    assert '- failed: SSD MobileNetV2 FRN' in md
    assert ('| SSD MobileNetV2 | synthetic_coco | 24 epochs | DNB | 2 | 3 | 33.0 ± 1.7 | '
            '53.0 ± 1.7 | 23.0 ± 1.7 | 0 | 0 | 0.0371 | 3 |') in md
    for png in ('bbox_ap_by_norm.png', 'bbox_ap_vs_batch.png', 'loss_curves.png', 'lr_curves.png'):
        assert osp.getsize(tmp_path / 'out' / png) > 10000 and f'({png})' in md
    json.loads((tmp_path / 'out' / 'study.json').read_text(), parse_constant=reject)  # strict


MMDET_DUMP = """
model = dict(type='RetinaNet', backbone=dict(type='ResNet', depth=50,
             norm_cfg=dict(type='GN', num_groups=32)), neck=dict(type='FPN'))
train_dataloader = dict(batch_size=4, dataset=dict(type='CocoDataset', data_root='/data/coco/'))
test_dataloader = dict(dataset=dict(type='CocoDataset', data_root='/data/coco/'))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12)
randomness = dict(seed=3)
"""


def test_runs_grouped_by_what_they_were(tmp_path):
    """The issue's mix-up: three MABN folders at batch 2, seed 0, one on another dataset, were
    '1 seed'. Now: the two on the same data are duplicates (the newest counts, the other is
    listed), the third is its own group; a run of mmdet's train.py (dumped config, validation in
    its log, no coco_metrics.json) is read from its config and log; a folder with only a log is
    listed as skipped."""
    root = str(tmp_path / 'runs')
    fake_run(root, 'MABN', 0, 0.20, name='a', mtime=1e9)
    fake_run(root, 'MABN', 0, 0.25, name='b', mtime=2e9)
    fake_run(root, 'MABN', 0, 0.10, name='c', data_root='/data/other_set')
    mmdet = osp.join(root, 'retinanet_r50_fpn_gn_1x_coco')
    os.makedirs(osp.join(mmdet, '20260102_000000', 'vis_data'))
    with open(osp.join(mmdet, 'retinanet_r50_fpn_gn_1x_coco.py'), 'w') as f:
        f.write(MMDET_DUMP)
    with open(osp.join(mmdet, '20260102_000000', 'vis_data', 'scalars.json'), 'w') as f:
        f.write(json.dumps(dict(loss=1.0, lr=0.01, iter=10, step=10)) + '\n')
        f.write(json.dumps({'coco/bbox_mAP': 0.4, 'coco/bbox_mAP_50': 0.6,
                            'coco/bbox_mAP_75': 0.42, 'coco/bbox_mAP_l': None, 'step': 12}) + '\n')
    os.makedirs(osp.join(root, 'crashed', '20260103_000000'))
    with open(osp.join(root, 'crashed', '20260103_000000', '20260103_000000.log'), 'w') as f:
        f.write('started\n')
    os.makedirs(osp.join(root, 'notes'))  # not a run: ignored

    path = write_study([root], str(tmp_path / 'out'), baseline='MABN')
    md = open(path).read()
    rows = json.loads((tmp_path / 'out' / 'study.json').read_text())['tables']['bbox']
    mabn = {osp.basename(r['dataset']): r for r in rows if r['norm'] == 'MABN'}
    assert mabn['synthetic_coco']['n'] == 1
    assert mabn['synthetic_coco']['mean'] == pytest.approx(0.25)
    assert mabn['other_set']['n'] == 1 and mabn['other_set']['mean'] == pytest.approx(0.10)
    assert f"seed 0 ({osp.join(root, 'a')}): duplicate of {osp.join(root, 'b')}" in md
    gn = next(r for r in rows if r['norm'] == 'GN')
    assert (gn['detector'], gn['batch'], gn['schedule'], gn['dataset'], gn['seeds']) == (
        'RetinaNet ResNet50', 4, '12 epochs', '/data/coco', [3])
    assert gn['mean'] == pytest.approx(0.4) and gn['AP75'] == pytest.approx(0.42)
    assert '## Results read from the training log' in md and 'RetinaNet ResNet50 GN batch 4' in md
    assert (f"- {osp.join(root, 'crashed')}: no coco_metrics.json and no validation in its log"
            in md)
    assert 'notes' not in md


def test_unfinished_run_is_described_by_its_config(tmp_path, monkeypatch):
    """A sweep's run with no report (it diverged) is what its dumped config says, over what
    sweep_run.json says, so that it joins its finished siblings' group; without MMEngine, a note
    says the config was not read and the run is what sweep_run.json says."""
    d = tmp_path / 'run'
    d.mkdir()
    (d / 'retinanet_gn.py').write_text(MMDET_DUMP)
    (d / 'sweep_run.json').write_text(json.dumps(dict(
        detector='retinanet', norm='GN', batch=4, seed=3, status='diverged', data_root=None)))
    run = read_run(str(d))
    assert (run['status'], run['detector'], run['dataset'], run['schedule'], run['norm'],
            run['batch'], run['seed'], run['notes']) == (
        'diverged', 'RetinaNet ResNet50', '/data/coco', '12 epochs', 'GN', 4, 3, [])
    monkeypatch.setitem(sys.modules, 'normdet.openmmlab.config', None)  # as without MMEngine
    run = read_run(str(d))
    assert (run['detector'], run['dataset'], run['schedule']) == ('retinanet', None, None)
    assert run['status'] == 'diverged' and 'config' not in run
    assert run['notes'] and run['notes'][0].startswith('retinanet_gn.py not read: ')


@pytest.mark.slow
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
    # progress: the run's iteration lines as they come
    assert re.search(r'\[sweep 2/4\] ssdlite_bn_b2_s0_\w+: Epoch\(train\) \[1\]', r.stdout)
    info = {d.rsplit('_', 1)[0]: json.loads((tmp_path / 'sweep' / d / 'sweep_run.json')
                                            .read_text())
            for d in os.listdir(tmp_path / 'sweep') if d.startswith('ssdlite')}
    status = {k: v['status'] for k, v in info.items()}
    # the CPU time of the run's own processes: a training run uses at least a second of it
    assert all(v['cpu_s'] > 1 and v['wall_s'] > 0 for v in info.values())
    assert status == {'ssdlite_bn_b1_s0': 'failed', 'ssdlite_bn_b2_s0': 'done',
                      'ssdlite_gn_b1_s0': 'done', 'ssdlite_gn_b2_s0': 'done'}
    md = (tmp_path / 'sweep' / 'report' / 'report.md').read_text()
    # what each run was comes from its dumped config: detector, dataset, schedule
    # refused before its runner starts (batch 1 with BN), so named as the sweep named it
    assert re.search(r'- failed: \S+ BN batch 1 seed 0', md), md
    assert f'| SSD MobileNetV2 | {osp.basename(data)} | 1 epoch | GN | 1 | 1 |' in md
    assert osp.getsize(tmp_path / 'sweep' / 'report' / 'bbox_ap_vs_batch.png') > 10000
    again = run_cli(*args, timeout=600)
    assert again.stdout.count('finished before, skipped') == 3


def test_sweep_runs_are_keyed_by_their_options():
    """A changed --epochs, --cfg-options or --data-root names another run folder, so a finished
    run trained with other options is never reused; the same options name the same folder."""
    sweep = tool('sweep')
    base = ['--detector', 'ssdlite', '--norms', 'BN', '--batch', '2', '--work-dir', 'w']

    def name(*extra):
        args = sweep.parse_args(base + ['--epochs', '1', *extra])
        return sweep.run_name(args, 'BN', 2, 0)
    assert name() == name() and name().startswith('ssdlite_bn_b2_s0_')
    assert len({name(), name('--cfg-options', 'optim_wrapper.optimizer.lr=0.1'),
                name('--data-root', '/data/coco'), sweep.run_name(
                    sweep.parse_args(base + ['--epochs', '2']), 'BN', 2, 0)}) == 4


def test_sweep_finds_any_detector_config():
    """--detector maps to configs/<detector>_<norm>.py, --config-pattern to any layout; a
    missing config names the detectors that exist."""
    sweep = tool('sweep')
    args = sweep.parse_args(['--detector', 'ssdlite', '--norms', 'DNB', '--batch', '2',
                             '--epochs', '1', '--work-dir', 'w',
                             '--config-pattern', 'configs/{detector}_{norm}_quickstart.py'])
    assert sweep.config_of(args, 'DNB') == osp.join(REPO, 'configs', 'ssdlite_dnb_quickstart.py')
    known = (r"detector 'yolo'.*mask_rcnn_r50_fpn, mini/mask_rcnn, mini/retinanet, mini/ssdlite, "
             r"retinanet_r50_fpn, ssdlite")
    with pytest.raises(ConfigError, match=known):
        sweep.parse_args(['--detector', 'yolo', '--norms', 'BN', '--batch', '2', '--epochs', '1',
                          '--work-dir', 'w'])


def test_study_estimates_the_plan_from_one_seed(tmp_path):
    """tools/study.py --seeds: the whole plan's time at J jobs from the runs of one seed, the
    one-process runs handed out in the plan's order to the first free job, then the runs of
    several processes one at a time, as train() runs them; no estimate while a cell has no
    finished run; a seed the plan does not have is refused by name."""
    study = tool('study')
    parts = [study.Part('a', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0, 1]),
             study.Part('b', 'mini/ssdlite', ['BN'], [16], 1, seeds=[0, 1])]
    for part, norm, batch, wall in [('a', 'BN', 2, 100.0), ('a', 'GN', 2, 300.0),
                                    ('b', 'BN', 16, 50.0)]:
        d = tmp_path / part / f'{norm}_{batch}_s0'
        d.mkdir(parents=True)
        (d / 'sweep_run.json').write_text(json.dumps(dict(norm=norm, batch=batch, seed=0,
                                                         status='done', wall_s=wall)))
    # costs in order (seed by seed within a part): BN2 100, GN2 300, BN2 100, GN2 300, BN16 50,
    # BN16 50; 2 jobs: [100, 300] -> [200, 300] -> [500, 300] -> [500, 350] -> [500, 400]
    assert study.estimate_plan(parts, str(tmp_path), 2) == (500.0, 6)
    assert study.estimate_plan(parts, str(tmp_path), 1) == (900.0, 6)
    # runs of several processes go one at a time after the one-process runs, whatever --jobs
    eight = study.Part('p', 'mini/ssdlite', ['BN'], [2], 1, seeds=[0, 1], gpus=8)
    d = tmp_path / 'p' / 'BN_2_s0'
    d.mkdir(parents=True)
    (d / 'sweep_run.json').write_text(json.dumps(dict(norm='BN', batch=2, seed=0, status='done',
                                                     wall_s=700.0)))
    assert study.estimate_plan([eight] + parts, str(tmp_path), 2) == (500.0 + 1400.0, 8)
    parts.append(study.Part('c', 'mini/retinanet', ['BN'], [2], 1))  # not trained yet
    assert study.estimate_plan(parts, str(tmp_path), 2) is None
    with pytest.raises(ConfigError, match=r'--seeds 7: no part has it \(the selected parts have '
                                          r'seeds 0 1 2 and norms DNB BN GN FRN MABN DNC RBN\)'):
        study.main(['--seeds', '7', '--report-only', '--work-dir', str(tmp_path)])
    # --norms, alone or with --seeds: the cells of those norms, a part without one dropped; a
    # name no part has is refused even beside one that selects runs
    picked = study.select_cells(parts + [eight], seeds=[1], norms=['GN'])
    assert [(p.name, p.norms, p.seeds) for p in picked] == [('a', ['GN'], [1])]
    with pytest.raises(ConfigError, match=r'--norms DN-B: no part has it \(the selected parts '
                                          r'have seeds 0 1 2 and norms BN GN\)'):
        study.select_cells(parts, seeds=[1], norms=['BN', 'DN-B'])
    with pytest.raises(ConfigError, match=r'--seeds 0 --norms GN: no part has these seeds and '
                                          r'norms together'):
        study.select_cells([parts[1], dataclasses.replace(parts[0], seeds=[1])], [0], ['GN'])


def test_study_epochs_name_the_detectors():
    """--epochs DETECTOR=N: a detector not named keeps its default; a misspelt detector or a
    count that is not a positive integer is refused naming the form and the detectors."""
    from normdet.study.plan import DEFAULT_EPOCHS, epochs_of
    defaults = epochs_of(DEFAULT_EPOCHS)
    assert epochs_of(['ssdlite=8']) == dict(defaults, ssdlite=8)
    for bad in ('ssdlite=abc', 'sddlite=4', 'ssdlite=0', 'ssdlite=-3', 'ssdlite'):
        with pytest.raises(ConfigError, match=rf"--epochs takes DETECTOR=N, N a positive integer, "
                                              rf"for ssdlite, retinanet, mask_rcnn; got '{bad}'"):
            epochs_of([bad])


def test_the_time_left_counts_only_runs_not_finished_before(tmp_path, monkeypatch, capsys):
    """The progress line's time left costs the runs still to train by the records of finished
    ones, not by the elapsed time: a resumed study skips its finished runs in seconds, and
    extrapolating from them said "0.5 min left" with 12 runs of 20 minutes to go."""
    study = tool('study')
    one = study.Part('a', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0, 1])
    eight = study.Part('p', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0, 1], gpus=8)
    for part, norm, wall in [('a', 'BN', 100.0), ('a', 'GN', 300.0), ('p', 'BN', 700.0)]:
        d = tmp_path / part / f'{norm}_2_s0'
        d.mkdir(parents=True)
        (d / 'sweep_run.json').write_text(json.dumps(dict(norm=norm, batch=2, seed=0,
                                                         status='done', wall_s=wall)))
    jobs = [(p, *r) for p in (one, eight) for r in p.runs()]
    records = study.finished([one, eight], str(tmp_path))
    left = study.unfinished(jobs, records)
    assert [(j[0].name, j[1], j[3]) for j in left] == [
        ('a', 'BN', 1), ('a', 'GN', 1), ('p', 'GN', 0), ('p', 'BN', 1), ('p', 'GN', 1)]
    # a's seed 1 at 2 jobs: max(100, 300); p's runs one after another, GN (no run of its own
    # yet) at the part's mean: 700 + 700 + 700
    assert study.remaining_seconds(left, records, 2) == 300.0 + 2100.0
    fresh = study.Part('c', 'mini/retinanet', ['BN'], [2], 1)  # no run of the part yet
    records = study.finished([one, eight, fresh], str(tmp_path))
    assert study.remaining_seconds(left + [(fresh, 'BN', 2, 0)], records, 2) is None
    # train()'s progress lines, with every run returning at once (as a finished one does): the
    # runs it has returned are no longer left, whether or not they finished, in the order it runs
    # them (one-process runs first, whatever the order of the parts)
    monkeypatch.setattr(study.subprocess, 'call', lambda *a, **k: 0)
    # sweep.py exits 0 after recording a failed run: the line says what the record says
    (tmp_path / 'a' / 'BN_2_s1').mkdir()
    (tmp_path / 'a' / 'BN_2_s1' / 'sweep_run.json').write_text(json.dumps(dict(
        norm='BN', batch=2, seed=1, status='failed', wall_s=5.0)))
    study.train([eight, one], argparse.Namespace(work_dir=str(tmp_path), jobs=2, stop_by=None))
    lines = capsys.readouterr().out.splitlines()
    assert '3 finished before' in lines[0]
    assert [re.search(r': (.*) \(', x).group(1) for x in lines[1:]] == [
        'done', 'done', 'failed', 'no record', 'done', 'no record', 'no record', 'no record']
    assert [re.search(r'\((.*)\)$', x).group(1).split(', ')[1] for x in lines[1:]] == [
        'about 40.0 min left', 'about 40.0 min left', 'about 40.0 min left',
        'about 35.0 min left', 'about 35.0 min left', 'about 23.3 min left', 'about 11.7 min left',
        'about 0.0 min left']


def test_stop_by_starts_only_the_runs_that_end_before_it(tmp_path, monkeypatch, capsys):
    """--stop-by HH:MM: a run whose cell's usual time would end after then is not started (a
    machine lent until then would cut it off, and an unfinished run is lost); one that fits
    starts, and so does one with no finished run of its part to be timed by. The time is the
    next one to come, and a time of day that is not HH:MM is refused."""
    study = tool('study')
    now = datetime.datetime(2026, 12, 7, 9, 0)
    assert study.clock_time('18:30', now) == datetime.datetime(2026, 12, 7, 18, 30).timestamp()
    assert study.clock_time('08:15', now) == datetime.datetime(2026, 12, 8, 8, 15).timestamp()
    for bad in ('25:00', '9', '9:61', 'ab:cd', '-1:30'):
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{bad}' is not a time of day HH:MM"):
            study.clock_time(bad, now)
    part = study.Part('p', 'mini/ssdlite', ['BN', 'GN'], [2], 1, seeds=[0, 1], gpus=8)
    fresh = study.Part('c', 'mini/ssdlite', ['BN'], [2], 1, seeds=[0])
    for norm, wall in [('BN', 600.0), ('GN', 3000.0)]:
        d = tmp_path / 'p' / f'{norm}_2_s0'
        d.mkdir(parents=True)
        (d / 'sweep_run.json').write_text(json.dumps(dict(norm=norm, batch=2, seed=0,
                                                         status='done', wall_s=wall)))
    started = []
    monkeypatch.setattr(study.subprocess, 'call', lambda cmd, **k: started.append(
        (cmd[cmd.index('--work-dir') + 1][-1], cmd[cmd.index('--norms') + 1])) or 0)
    study.train([part, fresh], argparse.Namespace(work_dir=str(tmp_path), jobs=2,
                                                  stop_by=time.time() + 1800))
    # seed 0's finished runs go to sweep.py, which skips them; GN's 50 minutes do not fit in 30
    assert started == [('c', 'BN'), ('p', 'BN'), ('p', 'GN'), ('p', 'BN')]
    assert 'p GN 8x2 s1: not started: its usual 50 min would end after --stop-by' in \
        capsys.readouterr().out.splitlines()[-1]


def test_every_part_of_the_plan_builds_its_models():
    """Each (config, norm, --cfg-options, images per GPU) of the full plan, the optional parts
    (the papers' protocol, the ablations) included, prepares and builds: an option the configs do
    not take would otherwise fail only hours into the study."""
    import argparse

    from mmdet.registry import MODELS
    from mmengine.config import Config, DictAction

    from normdet.openmmlab.engine.prepare import prepare_config
    from normdet.study.plan import DEFAULT_EPOCHS, epochs_of, plans
    settings = {(p.detector, n, b, tuple(p.options)) for p in
                plans(epochs_of(DEFAULT_EPOCHS))['full'] for n, b, _ in p.runs()}
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction, default={})
    built = 0
    for detector, norm, batch, options in sorted(settings):
        cfg = Config.fromfile(osp.join(REPO, 'configs', f'{detector}_{norm.lower()}.py'))
        cfg.merge_from_dict(parser.parse_args(
            ['--o', *options, f'train_dataloader.batch_size={batch}']).o)
        model = MODELS.build(prepare_config(cfg).model)
        extra = ' '.join(m.extra_repr() for m in model.modules()).replace("'", '')
        for option in options:  # each option reached the layers it names
            key, value = option.split('=')
            if key.startswith(('norm_options.layer_args.', 'norm_options.conv_args.')):
                assert f"{key.rsplit('.', 1)[1]}={value}" in extra, (detector, norm, option)
        built += 1
    assert built >= 40


def test_study_parts_by_name_or_pattern(tmp_path, capsys):
    """--parts takes names and shell patterns; one that matches no part is refused, naming the
    plan's parts."""
    study = tool('study')
    with pytest.raises(ConfigError, match=r"unknown parts \['papers_yolo\*'\]; the full plan has "
                                          r'dn_sc_normalized, ssdlite'):
        study.main(['--parts', 'papers_yolo*', '--report-only', '--work-dir', str(tmp_path)])
    full = study.plans(study.epochs_of(study.DEFAULT_EPOCHS))['full']
    assert [p.name for p in study.select_parts(full, ['papers_ssdlite*', 'ablation_gn_*',
                                                      'ssdlite'])] == [
        'ssdlite', 'papers_ssdlite', 'papers_ssdlite_ref', 'papers_ssdlite_b',
        'papers_ssdlite_ref_b', 'ablation_gn_depthwise', 'ablation_gn_pointwise']
