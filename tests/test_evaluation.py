"""NormDetCocoMetric against pycocotools run directly, with both backends (faster-coco-eval and
pycocotools give the same 12 numbers and per-class AP on the same detections), and the report
built from it."""
import contextlib
import importlib.util
import io
import json
import math
import os.path as osp

import mmcv
import mmdet
import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mm_utils import REPO
from normdet.data import CLASSES, generate_synthetic_coco
from normdet.openmmlab.evaluation import BACKENDS, NormDetCocoMetric
from normdet.utils.coco_metrics import SUMMARY
from normdet.cli.report import build_report, to_markdown, write_report


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = generate_synthetic_coco(str(tmp_path_factory.mktemp('eval')), num_train=1, num_val=12,
                                   image_size=(96, 128))
    return osp.join(root, 'annotations', 'instances_val2017.json')


def predictions(ann_file, jitter, drop, seed=0):
    """Ground truth turned into detections: boxes shifted by up to `jitter` px, a fraction `drop`
    left out, random scores; masks shifted with the boxes."""
    rng = np.random.default_rng(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    samples = []
    for img_id, img in gt.imgs.items():
        boxes, scores, labels, masks = [], [], [], []
        for a in gt.loadAnns(gt.getAnnIds(imgIds=img_id)):
            if rng.random() < drop:
                continue
            dx, dy = rng.integers(-jitter, jitter + 1, size=2) if jitter else (0, 0)
            x, y, w, h = a['bbox']
            boxes.append([x + dx, y + dy, x + w + dx, y + h + dy])
            scores.append(rng.uniform(0.1, 1.0))
            labels.append(a['category_id'] - 1)
            masks.append(np.roll(mask_utils.decode(a['segmentation']), (dy, dx), axis=(0, 1)))
        masks = np.stack(masks) if masks else np.zeros((0, img['height'], img['width']), np.uint8)
        samples.append(dict(img_id=img_id, ori_shape=(img['height'], img['width']),
                            pred_instances=dict(bboxes=torch.tensor(boxes).reshape(-1, 4).float(),
                                                scores=torch.tensor(scores).float(),
                                                labels=torch.tensor(labels).long(),
                                                masks=torch.from_numpy(masks).bool())))
    return samples


def evaluate(ann_file, samples, metric=('bbox', 'segm'), backend='auto'):
    m = NormDetCocoMetric(ann_file=ann_file, metric=list(metric), backend=backend)
    m.dataset_meta = dict(classes=CLASSES)
    m.process({}, samples)
    return m, m.evaluate(len(samples))


def pycocotools_direct(ann_file, samples, iou_type, cat_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        dets = []
        for s in samples:
            p = s['pred_instances']
            for i in range(len(p['scores'])):
                x1, y1, x2, y2 = p['bboxes'][i].tolist()
                d = dict(image_id=s['img_id'], category_id=int(p['labels'][i]) + 1,
                         score=float(p['scores'][i]))
                if iou_type == 'bbox':
                    d['bbox'] = [x1, y1, x2 - x1, y2 - y1]
                else:
                    rle = mask_utils.encode(np.asfortranarray(p['masks'][i].numpy().astype(np.uint8)))
                    d['segmentation'] = dict(size=rle['size'], counts=rle['counts'].decode())
                dets.append(d)
        e = COCOeval(gt, gt.loadRes(dets), iou_type)
        if cat_ids is not None:
            e.params.catIds = cat_ids
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e.stats


def test_perfect_detections_score_one(coco):
    _, m = evaluate(coco, predictions(coco, jitter=0, drop=0))
    for task in ('bbox', 'segm'):
        assert m[f'coco/{task}_mAP'] == pytest.approx(1.0)
        assert m[f'coco/{task}_AR@100'] == pytest.approx(1.0)


def test_faster_coco_eval_is_the_default_backend():
    """tools/setup_env.sh installs faster-coco-eval; where it is missing pycocotools is used."""
    installed = importlib.util.find_spec('faster_coco_eval') is not None
    assert NormDetCocoMetric(metric=['bbox']).backend == (
        'faster-coco-eval' if installed else 'pycocotools')
    with pytest.raises(ValueError, match="backend 'fast': use 'auto', 'faster-coco-eval'"):
        NormDetCocoMetric(metric=['bbox'], backend='fast')


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('task', ['bbox', 'segm'])
def test_matches_pycocotools(coco, task, backend):
    if backend == 'faster-coco-eval':
        pytest.importorskip('faster_coco_eval')  # installed by tools/setup_env.sh
    samples = predictions(coco, jitter=3, drop=0.3)
    metric, m = evaluate(coco, samples, metric=(task,), backend=backend)
    assert metric.details[task]['backend'] == backend
    want = pycocotools_direct(coco, samples, task)
    got = [m[f'coco/{task}_{k}'] for k in SUMMARY]
    np.testing.assert_allclose(got, np.where(want < 0, np.nan, want), atol=1e-12)
    assert 0.1 < got[0] < 0.95  # a real, non-trivial score
    for k, row in enumerate(metric.details[task]['per_class']):  # per class = COCOeval on it
        one = pycocotools_direct(coco, samples, task, cat_ids=[k + 1])
        for key, i in (('AP', 0), ('AP50', 1), ('AP75', 2), ('APs', 3), ('APm', 4), ('APl', 5)):
            if one[i] == -1:  # pycocotools: no ground truth in that range
                assert math.isnan(row[key]), (row, key)
            else:
                assert row[key] == pytest.approx(one[i], abs=1e-12), (row['class'], key)


def test_no_detection_scores_zero(coco):
    samples = predictions(coco, jitter=0, drop=1.0)
    metric, m = evaluate(coco, samples)
    assert all(m[f'coco/{t}_{k}'] == 0 for t in ('bbox', 'segm') for k in SUMMARY)
    assert metric.details['bbox']['num_detections'] == 0


def test_report_files(coco, tmp_path):
    metric, m = evaluate(coco, predictions(coco, jitter=2, drop=0.2))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mask_rcnn_r50_fpn_mabn.py'))
    report = build_report(cfg, m, metric.details, checkpoint='work_dirs/x/epoch_24.pth',
                          data=dict(root='data/synthetic_coco', source='synthetic',
                                    ann_file='annotations/instances_val2017.json',
                                    classes=CLASSES), train_world_size=8)
    json_path, md_path = write_report(str(tmp_path), report)
    saved = json.loads(open(json_path).read())
    assert saved['batch'] == dict(per_gpu=2, gpus=8, total=16) and saved['norm'] == 'MABN'
    assert saved['detector'] == 'MaskRCNN ResNet50'
    assert saved['metrics']['bbox_mAP'] == m['coco/bbox_mAP']
    md = open(md_path).read()
    assert '| training batch | 2 per GPU x 8 GPU(s) = 16 |' in md
    assert f"| bbox | {100 * m['coco/bbox_mAP']:.1f} |" in md
    assert 'MaskRCNN (ResNet + FPN + RPNHead + StandardRoIHead)' in md
    # what the run was: schedule, LR, evaluation backend, versions, commit
    assert saved['schedule'] == dict(by='epoch', max_epochs=24, dataset_repeats=None)
    assert saved['optimizer'] == dict(type='SGD', lr=0.02, auto_scale_lr=True,
                                      base_batch_size=16, lr_used=0.02)
    assert '| schedule (config) | 24 epochs |' in md and '| optimizer | SGD, lr 0.02 for batch 16 |' in md
    assert saved['evaluation']['backend'] == metric.backend
    assert f'| evaluation | {metric.backend} |' in md
    assert saved['versions']['mmcv'] == mmcv.__version__ and saved['versions']['normdet']
    assert f'mmdet {mmdet.__version__}' in md and f'torch {torch.__version__}' in md
    assert len(saved['commit'].split()[0]) == 40 and f"| commit | {saved['commit']} |" in md
    assert md == to_markdown(report)
