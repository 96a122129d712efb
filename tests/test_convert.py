"""convert_norm on mmdet's packaged SSDLite, RetinaNet and Mask R-CNN configs: the model builds
with the new norm everywhere BN was, with the method's companions, and trains a step."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from torch import nn

import normdet
from mm_utils import NORMS, packaged
from normdet import convert_norm
from normdet.norms import NORMS as TABLE
from normdet.norms import norm_of

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow

NORM_CLASS = {name: spec.layer_class for name, spec in TABLE.items()}
ALL_NORM_TYPES = tuple(set(NORM_CLASS.values()) - {nn.GroupNorm})


def build(detector, norm, **kw):
    cfg = packaged(detector)
    kw.setdefault('num_groups', 8 if detector == 'ssdlite' else 32)
    convert_norm(cfg, norm, **kw)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def loss_step(model, size, with_mask=False):
    packed = demo_mm_inputs(batch_size=2, image_shapes=[(3, size, size)] * 2, num_items=[3, 2],
                            num_classes=3, with_mask=with_mask)
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for v in losses.values())
    assert torch.isfinite(total)
    total.backward()
    return losses


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('detector', ['ssdlite', 'retinanet', 'mask_rcnn'])
def test_packaged_config_builds_and_trains(detector, norm):
    # SyncBN without a process group reduces over the local batch only: one process trains here
    cfg, model = build(detector, norm)
    norms = [m for m in model.modules() if isinstance(m, NORM_CLASS[norm])]
    assert norms, f'no {norm} in the converted {detector}'
    if norm != 'BN':  # no BN survives anywhere
        others = [m for m in model.modules()
                  if isinstance(m, ALL_NORM_TYPES) and not isinstance(m, NORM_CLASS[norm])
                  and not (norm == 'RBN' and m is getattr(model.data_preprocessor, 'input_bn', 0))]
        assert not others, others[:3]
    if norm == 'MABN':
        assert any(isinstance(m, normdet.CenConv2d) for m in model.backbone.modules())
        batch = cfg.train_dataloader.batch_size
        assert all(m.buffer_size == max(2, math.ceil(32 / batch)) for m in norms)
    loss_step(model, 128 if detector == 'ssdlite' else 96, with_mask=detector == 'mask_rcnn')


def test_companions_in_config():
    cfg = convert_norm(packaged('ssdlite'), 'FRN')
    assert cfg.model.type == 'NormActSingleStageDetector'  # activations after TLU removed
    assert cfg.model.backbone.norm_cfg == dict(type='FRN', requires_grad=True, eps=1e-6,
                                               learnable_eps='auto')
    assert cfg.optim_wrapper.constructor == 'NormDetOptimWrapperConstructor'
    cfg = convert_norm(packaged('retinanet'), 'MABN', batch_per_gpu=2)
    bb = cfg.model.backbone
    assert bb.conv_cfg.type == 'CenConv' and bb.norm_cfg.buffer_size == 16
    assert bb.norm_eval is False and bb.frozen_stages == -1 and bb.init_cfg is None
    assert bb.zero_init_residual is False
    assert cfg.model.neck.get('norm_cfg') is None  # mmdet's packaged FPN has no norm: none added
    # the buffer never silently collapses to 1: 32 / 24 rounds up to 2
    cfg = convert_norm(packaged('ssdlite'), 'MABN')
    assert cfg.train_dataloader.batch_size == 24 and cfg.model.backbone.norm_cfg.buffer_size == 2
    assert convert_norm(packaged('ssdlite'), 'MABN', batch_per_gpu=64).model.backbone.norm_cfg[
        'buffer_size'] == 2
    # BN-family norms take the detector's BN eps/momentum (SSDLite: 1e-3 / 0.03)
    for norm in ('DNB', 'DNC', 'RBN', 'SyncBN'):
        norm_cfg = convert_norm(packaged('ssdlite'), norm).model.backbone.norm_cfg
        assert (norm_cfg.eps, norm_cfg.momentum) == (1e-3, 0.03), norm
    assert convert_norm(packaged('ssdlite'), 'SyncBN').model.backbone.norm_cfg.type == 'NormDetSyncBN'
    cfg = convert_norm(packaged('retinanet'), 'DNB', sync_stats=True)
    assert cfg.model.backbone.norm_cfg.sync_stats is True
    assert 'sync_stats' not in convert_norm(packaged('retinanet'), 'GN', sync_stats=True).model[
        'backbone']['norm_cfg']
    cfg = convert_norm(packaged('retinanet'), 'RBN')
    assert cfg.optim_wrapper.constructor == 'RBNOptimWrapperConstructor'
    assert cfg.model.data_preprocessor.type == 'RBNDetDataPreprocessor'
    cfg = convert_norm(packaged('retinanet'), 'BN')
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.backbone.norm_eval is False


def test_unknown_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown norm 'BatchNrom'; choose one of BN, SyncBN"):
        convert_norm(packaged('ssdlite'), 'BatchNrom')
    with pytest.raises(ValueError, match="unknown norm placement 'neck'; choose one of all, "):
        convert_norm(packaged('ssdlite'), 'BN', placement='neck')


def test_a_user_constructor_is_kept():
    cfg = packaged('retinanet')
    cfg.optim_wrapper.constructor = 'LayerDecayOptimizerConstructor'
    assert convert_norm(cfg, 'GN').optim_wrapper.constructor == 'LayerDecayOptimizerConstructor'
    assert convert_norm(cfg, 'RBN').optim_wrapper.constructor == 'RBNOptimWrapperConstructor'


def test_every_built_norm_is_in_the_table():
    """norm_of finds the entry of every norm convert builds (optim and fuse rely on it)."""
    for norm in TABLE:
        cfg = convert_norm(packaged('retinanet'), norm)
        model = MODELS.build(cfg.model)
        found = {norm_of(m).name for m in model.backbone.modules() if norm_of(m) is not None}
        assert found == {norm}
