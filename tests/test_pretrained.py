"""A BN-pretrained checkpoint into every norm (docs/pretrained.md): MMDetection's
``init_cfg=dict(type='Pretrained', ...)`` on a normdet config, and ``load_bn_state_dict`` on a
model converted in plain PyTorch. The checkpoints are written here from randomly initialised
models, their BNs' tensors randomised (a fresh BN's 1 / 0 would match any init); nothing is
downloaded."""
import copy
import re

import pytest
import torch
import torchvision
from mmdet.registry import MODELS
from mmengine.config import Config

from mm_utils import NORMS, config_path, packaged
from normdet import prepare_config
from normdet.layers import CenConv2d
from normdet.norms import convert_module, load_bn_state_dict
from normdet.norms.pretrained import BN_TENSORS
from normdet.openmmlab.models import pretrained as pretrained_glue
from normdet.utils.errors import CheckpointError

CONTAIN_BN = ('BN', 'SyncBN', 'DNB', 'DNC', 'RBN')  # loaded exactly, statistics included
# the name mmcv gives each norm where a BN was named bn / bn1 (the spec, written out)
ABBR = dict(BN='bn', SyncBN='bn', RBN='bn', GN='gn', FRN='frn', MABN='mabn', DNB='dnb', DNC='dnc')
assert set(ABBR) == set(NORMS)


# resnet18's table row: exact, mapped, dropped (BN statistics), left at init (DN's SC module,
# MABN's moving averages and counter, FRN's tau and eps_l)
TABLE = dict(BN=(100, 0, 0, 0), SyncBN=(100, 0, 0, 0), RBN=(100, 0, 0, 0), DNB=(100, 0, 0, 80),
             DNC=(100, 0, 0, 80), MABN=(0, 60, 20, 60), GN=(0, 40, 60, 0), FRN=(0, 40, 60, 40))


def randomised(state: dict) -> dict:
    """``state`` with its BNs' tensors random (a fresh BN's 1 and 0 would match any init); the
    rest (random convolutions) as it is."""
    g = torch.Generator().manual_seed(1)
    out = dict(state)
    for bn in bn_layers(state):
        for k, low in (('weight', 0.5), ('bias', -0.5), ('running_mean', -0.5),
                       ('running_var', 0.5)):
            out[f'{bn}.{k}'] = torch.rand(state[f'{bn}.{k}'].shape, generator=g) + low
        out[f'{bn}.num_batches_tracked'] = torch.tensor(7)
    return out


def bn_layers(ckpt: dict) -> list:
    return sorted(k[:-len('.running_mean')] for k in ckpt if k.endswith('.running_mean'))


def renamed(bn_path: str, norm: str) -> str:
    return re.sub(r'(^|\.)bn(\d*)$', lambda m: m.group(1) + ABBR[norm] + m.group(2), bn_path)


def assert_loaded(model_state: dict, ckpt: dict, norm: str, rename=renamed, ignore=()):
    """Every BN of ``ckpt`` went into ``norm`` as docs/pretrained.md says, every other tensor
    (convolutions) loaded as it is."""
    eq = torch.testing.assert_close
    bns = bn_layers(ckpt)
    assert bns
    for bn in bns:
        t = rename(bn, norm)
        src = {k: ckpt[f'{bn}.{k}'] for k in BN_TENSORS}
        eq(model_state[f'{t}.scale' if norm == 'RBN' else f'{t}.weight'], src['weight'])
        eq(model_state[f'{t}.bias'], src['bias'])
        if norm in CONTAIN_BN:
            for k in BN_TENSORS[2:]:
                eq(model_state[f'{t}.{k}'], src[k])
        elif norm == 'MABN':  # the second moment; the moving averages start empty
            eq(model_state[f'{t}.running_var'], src['running_var'] + src['running_mean'] ** 2)
            assert int(model_state[f'{t}.iters']) == 0
            assert not model_state[f'{t}.x2_buffer'].any()
        else:  # GN, FRN: no statistics
            assert f'{t}.running_mean' not in model_state and f'{t}.running_var' not in model_state
        if norm == 'FRN' and f'{t}.tau' in model_state:
            assert not model_state[f'{t}.tau'].any()  # TLU at 0: the ReLU it replaces
        if norm in ('DNB', 'DNC'):  # the SC module keeps its init: starts as exact BN
            assert not model_state[f'{t}.sc.2.weight'].any()
    bn_keys = {f'{bn}.{k}' for bn in bns for k in BN_TENSORS}
    for key, value in ckpt.items():
        if key not in bn_keys and not key.startswith(ignore):
            eq(model_state[key], value)


# --- plain PyTorch: load_bn_state_dict, and convert_module agrees with it ---------------------

@pytest.mark.parametrize('norm', NORMS)
def test_bn_checkpoint_into_a_converted_torchvision_model(norm):
    bn_model = torchvision.models.resnet18(weights=None)
    ckpt = randomised(bn_model.state_dict())
    bn_model.load_state_dict(ckpt)
    model = convert_module(torchvision.models.resnet18(weights=None), norm)
    report = load_bn_state_dict(model, ckpt)
    state = model.state_dict()
    assert_loaded(state, ckpt, norm, rename=lambda bn, norm: bn)  # convert_module keeps names
    # convert_module of the BN model carries over what the checkpoint loads
    converted = convert_module(copy.deepcopy(bn_model), norm).state_dict()
    for key, value in converted.items():
        if '.sc.0.' not in key:  # DN's first SC layer: random init, not from BN
            torch.testing.assert_close(state[key], value, msg=key)
    if norm in CONTAIN_BN:  # loaded exactly, it computes what the BN model computed
        x = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(model.eval()(x), bn_model.eval()(x))
    # the table: resnet18's 20 BNs of 5 tensors each
    row = report.rows[norm]
    assert row['layers'] == 20 and not report.unknown and not report.skipped
    assert tuple(row[c] for c in ('exact', 'mapped', 'dropped', 'left at init')) == TABLE[norm]
    assert report.rows['Conv2d']['exact'] == 20 and report.rows['Linear']['exact'] == 2


def test_unknown_keys_raise_unless_not_strict():
    model = convert_module(torchvision.models.resnet18(weights=None), 'MABN')
    ckpt = randomised(torchvision.models.resnet18(weights=None).state_dict())
    ckpt['layer1.0.bn1.extra'] = torch.zeros(3)
    ckpt['layer1.0.conv1.weight'] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointError, match=r'2 checkpoint tensors load nowhere.*strict=False') \
            as error:
        load_bn_state_dict(model, ckpt)
    assert 'layer1.0.bn1.extra' in str(error.value)
    assert 'layer1.0.conv1.weight (shape (64, 64, 1, 1), the model has (64, 64, 3, 3) in ' \
        'layer1.0.conv1.weight)' in str(error.value)
    report = load_bn_state_dict(model, ckpt, strict=False)
    assert len(report.unknown) == 2
    torch.testing.assert_close(model.layer1[0].bn1.weight, ckpt['layer1.0.bn1.weight'])
    with pytest.raises(CheckpointError, match=r'no tensor of the checkpoint matches.*prefix'):
        load_bn_state_dict(model, {f'backbone.{k}': v for k, v in ckpt.items()})


@pytest.mark.parametrize('source', ['shared', 'per_level'])
@pytest.mark.parametrize('norm', ['MABN', 'DNB', 'GN'])
def test_per_level_head_norms(norm, source):
    """RetinaNet's head: a BN shared by the pyramid levels (mmdet's RetinaHead) goes into each
    level's copy; a per-level BN (normdet's BN RetinaNet) level by level; per-sample norms stay
    shared."""
    from normdet.norms import NormContext, get_norm
    head = copy.deepcopy(packaged('retinanet').model.bbox_head)
    head.update(num_classes=4, in_channels=16, feat_channels=16, stacked_convs=2,
                norm_cfg=dict(type='BN'))
    if source == 'per_level':
        head.type = 'NormDetRetinaHead'
    ckpt = randomised(MODELS.build(head).state_dict())
    head.norm_cfg = get_norm(norm).norm_cfg(dict(type='BN'), NormContext(num_groups=8))
    per_level = get_norm(norm).batch_stats
    head.type = 'NormDetRetinaHead' if per_level else 'RetinaHead'
    model = MODELS.build(head)
    if source == 'per_level' and not per_level:  # five levels' BNs, one shared GN: ambiguous
        with pytest.raises(CheckpointError, match='load nowhere'):
            load_bn_state_dict(model, ckpt)
        return
    load_bn_state_dict(model, ckpt)
    state = model.state_dict()
    for level in range(5 if per_level else 1):
        def rename(bn, norm):
            bn = bn.removesuffix(f'.norms.{level}')
            return renamed(bn, norm) + (f'.norms.{level}' if per_level else '')
        view = {k: v for k, v in ckpt.items()
                if '.norms.' not in k or f'.norms.{level}.' in k}
        assert_loaded(state, view, norm, rename)


# --- MMDetection: init_cfg=dict(type='Pretrained') on the configs -----------------------------

@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A torchvision ResNet-50 (RetinaNet's backbone: mmdet's ResNet uses torchvision's names)
    and an mmdet MobileNetV2 (SSDLite's: mmdet's own names), both BN, randomised."""
    folder = tmp_path_factory.mktemp('checkpoints')
    out = {}
    for name, model in (('retinanet_r50_fpn', torchvision.models.resnet50(weights=None)),
                        ('ssdlite', MODELS.build(dict(type='MobileNetV2', out_indices=(4, 7))))):
        state = randomised(model.state_dict())
        out[name] = (str(folder / f'{name}_bn.pth'), state)
        torch.save(state, out[name][0])
    return out


def build(detector: str, norm: str, init_cfg: dict):
    cfg = Config.fromfile(config_path(detector, norm))
    cfg.synthetic_data = 'tiny'
    cfg.norm_options = dict(cfg.get('norm_options') or {}, scratch=False)
    cfg.model.backbone.init_cfg = init_cfg
    prepare_config(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.mark.slow
@pytest.mark.usefixtures('synthetic_data')
@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('detector', ['retinanet_r50_fpn', 'ssdlite'])
def test_pretrained_init_loads_every_norm(detector, norm, checkpoints, monkeypatch):
    logged = []
    monkeypatch.setattr(pretrained_glue, 'print_log', lambda msg, **kw: logged.append(msg))
    path, ckpt = checkpoints[detector]
    model = build(detector, norm, dict(type='Pretrained', checkpoint=path))
    assert_loaded(model.backbone.state_dict(), ckpt, norm, ignore=('fc.',))
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(m, CenConv2d) for m in convs) == (norm == 'MABN')
    # one table in the log, one row a kind; torchvision's classifier skipped, by name
    (table,) = logged
    assert re.search(rf'^{norm} +\d+', table, re.M), table
    assert ('skipped (parts the model does not have): fc.weight, fc.bias' in table) == (
        detector == 'retinanet_r50_fpn')


@pytest.mark.slow
@pytest.mark.usefixtures('synthetic_data')
def test_pretrained_init_strict_prefix_and_wrong_checkpoints(checkpoints, tmp_path):
    path, ckpt = checkpoints['ssdlite']
    bad = dict(ckpt, **{'layer1.0.depthwise_conv.bn.extra': torch.zeros(2)})
    torch.save(bad, tmp_path / 'bad.pth')
    with pytest.raises(CheckpointError, match=r'MobileNetV2: 1 checkpoint tensors load nowhere '
                       r'in the model: layer1\.0\.depthwise_conv\.bn\.extra; .*strict=False'):
        build('ssdlite', 'DNB', dict(type='Pretrained', checkpoint=str(tmp_path / 'bad.pth')))
    model = build('ssdlite', 'DNB', dict(type='Pretrained', checkpoint=str(tmp_path / 'bad.pth'),
                                         strict=False))
    assert_loaded(model.backbone.state_dict(), ckpt, 'DNB')
    # a detector checkpoint, as tools/train.py writes it: the backbone under prefix='backbone.'
    torch.save(dict(meta={}, state_dict={**{f'backbone.{k}': v for k, v in ckpt.items()},
                                         'bbox_head.cls_convs.0.0.conv.weight': torch.zeros(1)}),
               tmp_path / 'detector.pth')
    detector = str(tmp_path / 'detector.pth')
    model = build('ssdlite', 'FRN',
                  dict(type='Pretrained', checkpoint=detector, prefix='backbone.'))
    assert_loaded(model.backbone.state_dict(), ckpt, 'FRN')
    with pytest.raises(CheckpointError, match="no tensor of the checkpoint matches.*prefix='backb"):
        build('ssdlite', 'FRN', dict(type='Pretrained', checkpoint=detector))
    # torchvision's MobileNetV2 names its layers otherwise than mmdet's: refused, not ignored
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / 'tv.pth')
    with pytest.raises(CheckpointError, match='same backbone class'):
        build('ssdlite', 'MABN', dict(type='Pretrained', checkpoint=str(tmp_path / 'tv.pth')))


@pytest.mark.slow
@pytest.mark.usefixtures('synthetic_data')
def test_the_rewrite_is_idempotent_and_scratch_drops_it(checkpoints):
    path, _ = checkpoints['ssdlite']
    cfg = Config.fromfile(config_path('ssdlite', 'MABN'))
    cfg.synthetic_data = 'tiny'
    cfg.norm_options = dict(cfg.norm_options, scratch=False)
    # --cfg-options init_cfg.type=Pretrained over SSDLite's TruncNormal init leaves its layer/std
    cfg.model.backbone.init_cfg.update(type='Pretrained', checkpoint=path, strict=False)
    prepare_config(cfg)
    assert cfg.model.backbone.init_cfg == [dict(type='NormDetPretrained', strict=False),
                                           dict(type='Pretrained', checkpoint=path)]
    prepared = copy.deepcopy(cfg.to_dict())
    assert prepare_config(cfg).to_dict() == prepared
    cfg.norm_options.scratch = True
    prepare_config(cfg)
    assert cfg.model.backbone.init_cfg is None
