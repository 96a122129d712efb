"""Every normdet name is built by mmcv's build_norm_layer inside real mmdet modules."""
import pytest
import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.registry import MODELS

import normdet
from mm_utils import NORMDET_NORMS
from normdet.norms import NORMS

CLASSES = {n: NORMS[n].layer for n in NORMDET_NORMS}
TYPES = {n: NORMS[n].type for n in NORMDET_NORMS}  # the registry names the configs use
ABBR = dict(FRN='frn', MABN='mabn', DNB='dnb', DNC='dnc', RBN='bn', SyncBN='bn')


def count(model, cls):
    return sum(isinstance(m, cls) for m in model.modules())


@pytest.mark.parametrize('norm', NORMDET_NORMS)
def test_build_norm_layer(norm):
    name, layer = build_norm_layer(dict(type=TYPES[norm], requires_grad=False), 16, postfix=2)
    assert isinstance(layer, CLASSES[norm]) and name == ABBR[norm] + '2'
    assert not any(p.requires_grad for p in layer.parameters())


def test_cenconv_conv_type():
    conv = build_conv_layer(dict(type='CenConv'), 3, 8, 3)
    assert isinstance(conv, normdet.CenConv2d)


def test_unknown_norm_in_config_is_a_clear_error():
    # mmcv's own message for this is "Cannot find None in registry": check_norm_types names it
    model = dict(type='RetinaNet', backbone=dict(type='ResNet', norm_cfg=dict(type='FRM')),
                 bbox_head=dict(type='RetinaHead', norm_cfg=dict(type='GN', num_groups=32)))
    with pytest.raises(ValueError, match=r"model.backbone.norm_cfg: unknown norm type 'FRM'.*FRN"):
        normdet.check_norm_types(model)
    normdet.check_norm_types(dict(backbone=dict(norm_cfg=dict(type='MABN'))))


def _train_step(model, x):
    model.train()
    out = model(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    flat = [t for o in outs for t in (o if isinstance(o, (list, tuple)) else [o])]
    sum(t.float().mean() for t in flat).backward()
    assert all(torch.isfinite(t).all() for t in flat)
    return flat


@pytest.mark.parametrize('norm', NORMDET_NORMS)
def test_inside_resnet_and_fpn(norm):
    backbone = MODELS.build(dict(type='ResNet', depth=18, norm_cfg=dict(type=TYPES[norm]),
                                 norm_eval=False, out_indices=(2, 3)))
    backbone.init_weights()
    assert count(backbone, CLASSES[norm]) == 20  # stem + 2 per block x 8 + 3 downsamples
    feats = _train_step(backbone, torch.randn(2, 3, 64, 64))
    neck = MODELS.build(dict(type='FPN', in_channels=[256, 512], out_channels=32, num_outs=3,
                             norm_cfg=dict(type=TYPES[norm])))
    assert count(neck, CLASSES[norm]) == 4
    _train_step(neck, [f.detach() for f in feats])


@pytest.mark.parametrize('norm', NORMDET_NORMS)
def test_inside_mobilenetv2(norm):
    model = MODELS.build(dict(type='MobileNetV2', out_indices=(4, 7), norm_cfg=dict(type=TYPES[norm])))
    model.init_weights()
    assert count(model, CLASSES[norm]) == 52
    _train_step(model, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize('norm', NORMDET_NORMS)
def test_inside_ssd_and_retina_heads(norm):
    ssd = MODELS.build(dict(
        type='SSDHead', num_classes=3, in_channels=(16, 32), use_depthwise=True,
        norm_cfg=dict(type=TYPES[norm]), act_cfg=dict(type='ReLU6'),
        anchor_generator=dict(type='SSDAnchorGenerator', scale_major=False, input_size=64,
                              strides=[16, 32], ratios=[[2], [2]], min_sizes=[16, 32],
                              max_sizes=[32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                        target_stds=[0.1, 0.1, 0.2, 0.2])))
    ssd.init_weights()
    assert count(ssd, CLASSES[norm]) == 4
    _train_step(ssd, [torch.randn(2, 16, 4, 4), torch.randn(2, 32, 2, 2)])
    retina = MODELS.build(dict(
        type='RetinaHead', num_classes=3, in_channels=16, feat_channels=16, stacked_convs=2,
        norm_cfg=dict(type=TYPES[norm]),
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1,
                              ratios=[1.0], strides=[8, 16]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[1.] * 4)))
    retina.init_weights()
    assert count(retina, CLASSES[norm]) == 4
    _train_step(retina, [torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4)])


def test_init_weights_keeps_the_papers_inits():
    """mmdet's init_weights must not undo RBN's scale 0.1 nor DN's zero-initialised SC output."""
    for norm, check in (('RBN', lambda m: torch.all(m.scale == 0.1)),
                        ('DNB', lambda m: torch.all(m.sc[-1].weight == 0))):
        model = MODELS.build(dict(type='MobileNetV2', out_indices=(7,), norm_cfg=dict(type=TYPES[norm])))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, CLASSES[norm]):
                    m.reset_parameters()
        model.init_weights()
        layers = [m for m in model.modules() if isinstance(m, CLASSES[norm])]
        assert layers and all(bool(check(m)) for m in layers)
