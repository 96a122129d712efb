"""convert_norm on mmdet's packaged SSDLite, RetinaNet and Mask R-CNN configs: the model builds
with the new norm everywhere BN was, with the method's companions, and trains a step."""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from torch import nn

import normdet
from mm_utils import NORMS, packaged
from normdet import convert_norm

NORM_CLASS = dict(BN=nn.BatchNorm2d, SyncBN=normdet.SyncBatchNorm, GN=nn.GroupNorm, FRN=normdet.FRN,
                  MABN=normdet.MABN, DNB=normdet.DNB, DNC=normdet.DNC, RBN=normdet.RBN)
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
        assert all(m.buffer_size == 32 // cfg.train_dataloader.batch_size for m in norms)
    loss_step(model, 128 if detector == 'ssdlite' else 96, with_mask=detector == 'mask_rcnn')


def test_companions_in_config():
    cfg = convert_norm(packaged('ssdlite'), 'FRN')
    assert cfg.model.backbone.act_cfg is None and cfg.model.neck.act_cfg is None
    assert cfg.model.bbox_head.act_cfg is None and cfg.model.backbone.norm_cfg.eps == 1e-6
    cfg = convert_norm(packaged('retinanet'), 'MABN', batch_per_gpu=2)
    bb = cfg.model.backbone
    assert bb.conv_cfg.type == 'CenConv' and bb.norm_cfg.buffer_size == 16
    assert bb.norm_eval is False and bb.frozen_stages == -1 and bb.init_cfg is None
    assert cfg.model.neck.get('norm_cfg') is None  # RetinaNet's FPN has no norm: none added
    cfg = convert_norm(packaged('retinanet'), 'RBN')
    assert cfg.optim_wrapper.constructor == 'RBNOptimWrapperConstructor'
    assert cfg.model.data_preprocessor.type == 'RBNDetDataPreprocessor'
    cfg = convert_norm(packaged('retinanet'), 'BN')
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.backbone.norm_eval is False


def test_unknown_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown norm 'BatchNrom'; choose one of BN, SyncBN"):
        convert_norm(packaged('ssdlite'), 'BatchNrom')
