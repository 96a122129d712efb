"""Every config in configs/ loads, prepares (data resolution + norm rewrite) and builds its model
with the norm it names, on the default synthetic data."""
import copy
import glob
import json
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

from mm_utils import REPO
from normdet import prepare_config
from normdet.data import CLASSES, generate_synthetic_coco
from normdet.norms import NORMS

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))


# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('synthetic_data')]


def test_a_config_per_detector_and_norm():
    names = {osp.basename(c)[:-3] for c in CONFIGS}
    for det in ('ssdlite', 'retinanet_r50_fpn', 'mask_rcnn_r50_fpn'):
        for norm in NORMS:
            assert f'{det}_{norm.lower()}' in names
    assert 'ssdlite_dnb' in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_builds(path):
    cfg = prepare_config(Config.fromfile(path))
    assert cfg.normdet_data['source'] == 'synthetic'
    assert cfg.train_dataloader.persistent_workers is False  # exact --resume
    assert cfg.auto_scale_lr.enable is True or 'quickstart' in path
    assert cfg.val_evaluator.type == 'NormDetCocoMetric'
    assert cfg.val_evaluator.ann_file.startswith(cfg.data_root)
    model = MODELS.build(cfg.model)
    model.init_weights()
    norm = cfg.norm
    assert any(isinstance(m, NORMS[norm].layer_class) for m in model.modules()), norm
    heads = [m for m in model.modules() if hasattr(m, 'num_classes') and m.num_classes != 1]
    assert heads and all(h.num_classes == len(CLASSES) for h in heads)
    if 'mask_rcnn' in path or 'retinanet' in path:
        assert cfg.train_dataloader.batch_size == 2
        assert model.backbone.frozen_stages == -1 and model.backbone.norm_eval is False
    if norm == 'MABN':
        assert cfg.model.backbone.conv_cfg.type == 'CenConv'
    prepared = copy.deepcopy(cfg.to_dict())
    assert prepare_config(cfg) is cfg  # idempotent: the dumped config prepares to itself
    assert cfg.to_dict() == prepared


MINI = sorted(glob.glob(osp.join(REPO, 'configs', 'mini', '*.py')))


def test_a_mini_config_per_detector_and_norm():
    names = {osp.basename(c)[:-3] for c in MINI}
    assert names == {f'{det}_{norm.lower()}' for det in ('ssdlite', 'retinanet', 'mask_rcnn')
                     for norm in NORMS}


@pytest.mark.parametrize('path', MINI, ids=lambda p: 'mini_' + osp.basename(p)[:-3])
def test_mini_config_builds_on_the_benchmark(path):
    """The mini configs train on the embedded benchmark (here its 'tiny' version, same images),
    from scratch, with the norm placed as in the full configs and their own 128 px pipeline."""
    cfg = Config.fromfile(path)
    assert cfg.synthetic_data == 'benchmark'
    cfg.synthetic_data = 'tiny'
    prepare_config(cfg)
    from normdet.data.synthetic import PRESETS, classes_of
    classes = classes_of(PRESETS['tiny']['num_classes'])
    assert tuple(cfg.normdet_data['classes']) == classes
    assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 16 and cfg.optim_wrapper.optimizer.type == 'AdamW'
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert any(isinstance(m, NORMS[cfg.norm].layer_class) for m in model.modules()), cfg.norm
    assert model.backbone.norm_eval is False
    heads = [m for m in model.modules() if hasattr(m, 'num_classes') and m.num_classes != 1]
    assert heads and all(h.num_classes == len(classes) for h in heads)


def test_data_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('NORMDET_DATA_ROOT', str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError, match='nowhere'):
        prepare_config(Config.fromfile(osp.join(REPO, 'configs', 'ssdlite_bn.py')))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ssdlite_bn.py'))
    cfg.data_root = 'synthetic'  # explicit synthetic wins over the environment
    assert prepare_config(cfg).normdet_data['source'] == 'synthetic'


def test_real_coco_layout_uses_its_classes(tmp_path):
    """A COCO-format root with other categories: classes and num_classes follow its files."""
    root = generate_synthetic_coco(str(tmp_path), num_train=2, num_val=2, image_size=(64, 64))
    for split in ('train', 'val'):
        p = tmp_path / 'annotations' / f'instances_{split}2017.json'
        ann = json.loads(p.read_text())
        ann['categories'].append(dict(id=9, name='hexagon', supercategory='shape'))
        p.write_text(json.dumps(ann))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mask_rcnn_r50_fpn_gn.py'))
    cfg.data_root = root
    prepare_config(cfg)
    assert cfg.model.roi_head.bbox_head.num_classes == 5
    assert cfg.model.roi_head.mask_head.num_classes == 5
    assert cfg.model.rpn_head.get('num_classes', 1) == 1
    assert cfg.train_dataloader.dataset.metainfo['classes'][-1] == 'hexagon'
