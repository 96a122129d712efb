"""Where each norm sits, for every detector x norm of configs/, as the papers place them: counts
per component, FRN+TLU exactly where BN had an activation after it (and no activation after
TLU), learnable eps on FRN's 1x1 maps, one eps/momentum convention per detector."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config

from mm_utils import DETECTORS, REPO
from normdet import prepare_config
from normdet.data import CLASSES
from normdet.openmmlab.models.heads import PerLevelNorm
from normdet.openmmlab.models.norm_act import ACTIVATIONS, has_fused_act
from normdet.norms import NORMS, norm_of

# norms per component, placement='all' (mmdet's packaged RetinaNet and Mask R-CNN configs, which
# normdet's inherit, normalise the backbone only: 53 / 53)
COUNTS = {
    'ssdlite': dict(backbone=52, neck=12, bbox_head=12),
    'retinanet_r50_fpn': dict(backbone=53, neck=8, bbox_head=8),
    'mask_rcnn_r50_fpn': {'backbone': 53, 'neck': 8, 'roi_head.bbox_head': 4,
                          'roi_head.mask_head': 4},
}
INPUT = dict(ssdlite=(320, 320), retinanet_r50_fpn=(96, 128), mask_rcnn_r50_fpn=(96, 128))


# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('synthetic_data')]


def build(detector, norm, **norm_options):
    cfg = Config.fromfile(osp.join(REPO, 'configs', f'{detector}_{norm.lower()}.py'))
    cfg.norm_options.update(norm_options)
    prepare_config(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def component(name: str) -> str:
    parts = name.split('.')
    return '.'.join(parts[:2]) if parts[0] == 'roi_head' else parts[0]


def norm_units(model) -> list:
    """(name, module) of every place a norm runs: a norm, or a PerLevelNorm (one norm per
    pyramid level in a shared head) counted once; the input BN of RBN's preprocessor left out."""
    inside = {id(c) for m in model.modules() if isinstance(m, PerLevelNorm) for c in m.norms}
    return [(n, m) for n, m in model.named_modules()
            if (isinstance(m, PerLevelNorm) or norm_of(m) is not None) and id(m) not in inside
            and not n.startswith('data_preprocessor')]


def count_norms(model) -> dict:
    counts = {}
    for name, _ in norm_units(model):
        counts[component(name)] = counts.get(component(name), 0) + 1
    return counts


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('detector', DETECTORS)
def test_norm_counts_per_component(detector, norm):
    _, model = build(detector, norm)
    assert count_norms(model) == COUNTS[detector]
    assert all(norm_of(m) is NORMS[norm] for n, m in model.named_modules()
               if norm_of(m) is not None and not n.startswith('data_preprocessor'))
    # RetinaNet's towers share their convs over 5 levels: batch-statistics norms are per level
    per_level = [m for m in model.modules() if isinstance(m, PerLevelNorm)]
    if detector == 'retinanet_r50_fpn' and NORMS[norm].batch_stats:
        assert len(per_level) == 8 and all(len(m.norms) == 5 for m in per_level)
    else:
        assert per_level == []


def test_per_level_norms_see_their_own_level():
    """Each level's norm of a RetinaNet tower is trained on that level only: after one training
    forward, the five running means of a BN position differ and each matches its level."""
    cfg, model = build('retinanet_r50_fpn', 'BN')
    unit = model.bbox_head.cls_convs[0].bn
    seen = {}

    def record(level):
        def hook(module, inputs):
            seen.setdefault(level, inputs[0].detach().mean(dim=(0, 2, 3)))
        return hook
    hooks = [n.register_forward_pre_hook(record(level)) for level, n in enumerate(unit.norms)]
    model.train()
    with torch.enable_grad():
        loss_forward(model, (96, 128))
    for h in hooks:
        h.remove()
    assert sorted(seen) == [0, 1, 2, 3, 4]
    for level, n in enumerate(unit.norms):
        torch.testing.assert_close(n.running_mean, 0.1 * seen[level])
        assert n.num_batches_tracked.item() == 1


@pytest.mark.parametrize('detector', DETECTORS)
def test_backbone_only_placement(detector):
    for norm in ('BN', 'FRN', 'MABN'):
        cfg, model = build(detector, norm, placement='backbone')
        assert count_norms(model) == dict(backbone=COUNTS[detector]['backbone'])
        assert cfg.model.neck.get('norm_cfg') is None


@pytest.mark.parametrize('placement', ['depthwise', 'pointwise'])
def test_norm_in_one_kind_of_mobilenet_conv(placement):
    """placement='depthwise' / 'pointwise' (the GN ablation of issue 31): GN after MobileNetV2's
    17 depthwise (or 34 1x1) convolutions only, the config's BN after the others (the stem
    included), GN everywhere outside the backbone; the dumped config rebuilds the same model,
    and the model trains."""
    from mmcv.cnn import ConvModule

    from normdet.openmmlab.models.placed import conv_kind
    cfg, model = build('ssdlite', 'GN', placement=placement)
    kinds = {}
    for m in model.backbone.modules():
        if isinstance(m, ConvModule):
            kinds.setdefault((conv_kind(m), type(m.norm).__name__), []).append(m)
    gn_kind = {'depthwise': 'depthwise', 'pointwise': 'pointwise'}[placement]
    want = {'depthwise': 17, 'pointwise': 34, 'dense': 1}
    assert {k: len(v) for k, v in kinds.items()} == {
        (kind, 'GroupNorm' if kind == gn_kind else 'BatchNorm2d'): n for kind, n in want.items()}
    bns = [m.norm for (kind, name), ms in kinds.items() if name == 'BatchNorm2d' for m in ms]
    assert all(bn.eps == 1e-3 and bn.momentum == 0.03 for bn in bns)  # SSDLite's own BN
    assert count_norms(model) == COUNTS['ssdlite']
    assert all(isinstance(m, torch.nn.GroupNorm) for n, m in model.named_modules()
               if n.startswith(('neck', 'bbox_head')) and norm_of(m) is not None)
    again = MODELS.build(Config.fromstring(cfg.pretty_text, '.py').model)
    assert list(again.state_dict()) == list(model.state_dict())
    losses = loss_forward(model, (96, 96))
    total = sum(sum(v) if isinstance(v, list) else v for v in losses.values()).sum()
    total.backward()
    assert torch.isfinite(total) and model.backbone.conv1.conv.weight.grad.abs().sum() > 0


def test_placement_in_mobilenet_refuses_what_it_cannot_place():
    from normdet.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="MobileNetV2 backbone.*'ResNet'"):
        build('retinanet_r50_fpn', 'GN', placement='depthwise')
    for norm, what in (('MABN', 'weight-centralised conv'), ('FRN', 'its own activation')):
        with pytest.raises(ConfigError, match=what):
            build('ssdlite', norm, placement='pointwise')
    with pytest.raises(ConfigError, match='unknown norm placement'):
        build('ssdlite', 'GN', placement='1x1')


def loss_forward(model, size):
    """A training forward of every part of the detector (heads and RoI heads included)."""
    packed = demo_mm_inputs(batch_size=2, image_shapes=[(3, *size)] * 2, num_items=[3, 2],
                            num_classes=len(CLASSES), with_mask=True)
    return model(**model.data_preprocessor(packed, True), mode='loss')


def norm_outputs_feeding_activations(model, x):
    """For each norm (in module order): whether an activation reads its output unchanged.

    Norm outputs are recorded as (object, version); an activation reading the same tensor at the
    same version reads the norm's output (an in-place residual sum in between bumps the version).
    Returns {norm index: fed an activation}."""
    norms = [m for _, m in norm_units(model)]
    index = {id(m): i for i, m in enumerate(norms)}
    produced, fed, keep = {}, {i: False for i in range(len(norms))}, []

    def after_norm(m, inputs, out):
        keep.append(out)  # keeps the object alive, so ids are not reused
        produced[(id(out), out._version)] = index[id(m)]

    def before_act(m, inputs):
        key = (id(inputs[0]), inputs[0]._version)
        if key in produced:
            fed[produced[key]] = True

    hooks = [m.register_forward_hook(after_norm) for m in norms]
    hooks += [m.register_forward_pre_hook(before_act) for m in model.modules()
              if isinstance(m, ACTIVATIONS)]
    model.train()
    with torch.enable_grad():
        loss_forward(model, x.shape[2:])
    for h in hooks:
        h.remove()
    return norms, fed


@pytest.mark.parametrize('detector', DETECTORS)
def test_frn_tlu_replaces_each_norm_activation_pair(detector):
    """TLU exactly where the BN model has an activation right after the norm; no activation ever
    reads a TLU's output; and the FRN model has no activation module left where BN had one."""
    x = torch.randn(2, 3, *INPUT[detector])
    _, bn_model = build(detector, 'BN')
    bn_norms, bn_fed = norm_outputs_feeding_activations(bn_model, x)
    _, frn_model = build(detector, 'FRN')
    frn_norms, frn_fed = norm_outputs_feeding_activations(frn_model, x)
    assert len(bn_norms) == len(frn_norms)
    assert not any(frn_fed.values()), 'an activation follows FRN'
    tlu = [has_fused_act(m) for m in frn_norms]
    assert tlu == [bn_fed[i] for i in range(len(bn_norms))]
    assert 0 < sum(tlu) < len(tlu)  # linear bottlenecks, FPN convs, residual ends: no TLU
    assert frn_model.norm_act_unresolved == []


def test_frn_tlu_in_resnet_block_and_ssdlite():
    _, model = build('retinanet_r50_fpn', 'FRN')
    block = model.backbone.layer1[0]
    assert has_fused_act(block.norm1) and has_fused_act(block.norm2)
    assert not has_fused_act(block.norm3) and not has_fused_act(block.downsample[1])
    assert has_fused_act(model.backbone.norm1) and isinstance(model.backbone.relu, torch.nn.Identity)
    _, model = build('ssdlite', 'FRN')
    ir = model.backbone.layer2[0]
    assert not has_fused_act(ir.linear_conv.norm) and has_fused_act(ir.depthwise_conv.norm)
    assert not hasattr(ir.depthwise_conv, 'activate') and not ir.depthwise_conv.with_activation


@pytest.mark.parametrize('detector', ['ssdlite'])
def test_frn_learnable_eps_on_1x1_maps(detector):
    """At the config's input size (SSDLite 320 px: 1x1 maps in its last neck and head levels),
    every FRN layer that sees a 1x1 map has a learnable eps."""
    cfg, model = build(detector, 'FRN')
    assert cfg.model.backbone.norm_cfg.learnable_eps == 'auto'
    seen = {}
    hooks = [m.register_forward_hook(
        lambda m, i, o, name=name: seen.setdefault(name, set()).add(i[0].shape[2] * i[0].shape[3]))
        for name, m in model.named_modules() if norm_of(m) is NORMS['FRN']]
    size = cfg.get('input_size', 320)
    model._forward(torch.randn(2, 3, size, size))
    for h in hooks:
        h.remove()
    on_1x1 = [n for n, sizes in seen.items() if 1 in sizes]
    assert len(on_1x1) >= 4
    modules = dict(model.named_modules())
    assert all(modules[n].eps_l is not None for n in on_1x1)


@pytest.mark.parametrize('detector', DETECTORS)
def test_one_eps_momentum_convention_per_detector(detector):
    """Every BN-family norm (entry with bn_args) takes the detector's BN eps/momentum; the others
    keep their paper's values."""
    bn_cfg, _ = build(detector, 'BN')
    want = bn_cfg.model.backbone.norm_cfg
    eps, momentum = want.get('eps', 1e-5), want.get('momentum', 0.1)
    for name, spec in NORMS.items():
        if name == 'BN':
            continue
        cfg, model = build(detector, name)
        layers = [m for n, m in model.named_modules()  # RBN's input BN: its own defaults
                  if norm_of(m) is spec and not n.startswith('data_preprocessor')]
        if spec.bn_args:
            assert {(m.eps, m.momentum) for m in layers} == {(eps, momentum)}, name
    mabn = [m for m in build(detector, 'MABN')[1].modules() if norm_of(m) is NORMS['MABN']]
    assert {(m.eps, m.momentum) for m in mabn} == {(1e-5, 0.98)}  # the paper's, its own meaning


def test_mabn_counts_one_step_under_activation_checkpointing():
    """mmdet's with_cp=True (a ResNet option) recomputes each block's forward in backward: every
    MABN layer of the detector still advances exactly one iteration per training step."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'retinanet_r50_fpn_mabn.py'))
    cfg.model.backbone.with_cp = True
    prepare_config(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    for step in (1, 2):
        losses = loss_forward(model, (96, 128))
        model.parse_losses(losses)[0].backward()
        mabn = [m for m in model.modules() if norm_of(m) is NORMS['MABN']]
        assert len(mabn) > 50 and {int(m.iters) for m in mabn} == {step}
