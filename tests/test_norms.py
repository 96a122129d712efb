"""The norm table (normdet.norms): every entry builds its layer, inside and outside mmcv, its
norm_cfg follows BN's as the entry says, and a new norm needs only its layer and one entry."""
import inspect
import re

import pytest
import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from torch import nn

from mm_utils import packaged
from normdet.openmmlab import check_norm_types, convert_norm, models as registry
from normdet.norms import fold_norms
from normdet.norms import NORMS, Norm, NormContext, batch_free_norms, get_norm, norm_of, register_norm
from normdet.openmmlab.engine.optim import NormDetOptimWrapperConstructor
from normdet.utils.errors import ConfigError


@pytest.mark.parametrize('name', NORMS)
def test_entry_builds_the_same_layer_with_and_without_mmcv(name):
    spec = NORMS[name]
    plain = spec.build(32)
    cfg = spec.norm_cfg(dict(type='BN', requires_grad=False), NormContext(batch_per_gpu=4))
    _, built = build_norm_layer(cfg, 32)
    assert type(plain) is type(built) is spec.layer_class
    assert norm_of(plain) is norm_of(built) is spec
    assert not any(p.requires_grad for p in built.parameters())  # requires_grad carries over
    x = torch.randn(2, 32, 5, 5)
    assert built.train()(x).shape == x.shape


def test_norm_cfg_from_bn():
    bn = dict(type='BN', eps=1e-3, momentum=0.03, requires_grad=True)
    ctx = NormContext(batch_per_gpu=24, num_groups=8, sync_stats=True)
    assert get_norm('DNB').norm_cfg(bn, ctx) == dict(type='DNB', requires_grad=True, eps=1e-3,
                                                     momentum=0.03, sync_stats=True)
    assert get_norm('GN').norm_cfg(bn, ctx) == dict(type='GN', requires_grad=True, num_groups=8)
    assert get_norm('FRN').norm_cfg(bn, ctx) == dict(type='FRN', requires_grad=True, eps=1e-6,
                                                     learnable_eps='auto')
    # MABN: the paper's own eps/momentum (momentum weighs the old value), a buffer of
    # ceil(32 / batch) iterations, never 1
    mabn = get_norm('MABN').norm_cfg(bn, ctx)
    assert mabn == dict(type='MABN', requires_grad=True, buffer_size=2, sync_stats=True)
    for batch, buffer in ((1, 32), (2, 16), (3, 11), (16, 2), (24, 2), (32, 2), (64, 2)):
        assert get_norm('MABN').norm_cfg({}, NormContext(batch_per_gpu=batch))['buffer_size'] == buffer
    assert get_norm('BN').norm_cfg({}) == dict(type='BN', requires_grad=True, eps=1e-5, momentum=0.1)
    assert set(batch_free_norms()) == {'GN', 'FRN'}


def test_table_is_consistent():
    for spec in NORMS.values():
        assert spec.sync in ('always', 'option', 'never')
        if spec.sync == 'option':
            assert 'sync_stats' in spec.layer.__init__.__code__.co_varnames
        assert spec.paper
    with pytest.raises(ValueError, match="unknown norm 'XN'; choose one of BN, SyncBN, GN"):
        get_norm('XN')
    with pytest.raises(ValueError, match='already registered'):
        register_norm(NORMS['BN'])


class ScaleNorm(nn.Module):
    """A toy norm for the test below: x / rms over (N, H, W) per channel, times a scale; in eval,
    by a running rms."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.register_buffer('running_ms', torch.ones(num_features))

    def forward(self, x):
        if self.training:
            ms = x.square().mean(dim=(0, 2, 3))
            self.running_ms.lerp_(ms.detach(), 0.1)
        else:
            ms = self.running_ms
        return x * (self.weight * torch.rsqrt(ms + self.eps)).view(1, -1, 1, 1)


@pytest.fixture
def toy_norm():
    spec = register_norm(Norm('TOY', 'ToyScaleNorm', layer=ScaleNorm, paper='none', eval_affine=(
        lambda m: (m.weight * torch.rsqrt(m.running_ms + m.eps), torch.zeros_like(m.weight)))))
    registry.register_layers()
    yield spec
    del NORMS['TOY']
    MODELS.module_dict.pop('ToyScaleNorm', None)
    MODELS.parent.module_dict.pop('ToyScaleNorm', None)


def test_a_new_norm_is_one_entry(toy_norm):
    """convert, the registry, the optimizer rule and folding all pick a new entry up."""
    cfg = convert_norm(packaged('retinanet'), 'TOY')
    check_norm_types(cfg.model)
    model = MODELS.build(cfg.model)
    norms = [m for m in model.modules() if isinstance(m, ScaleNorm)]
    assert len(norms) == 53
    ctor = NormDetOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)), dict(norm_decay_mult=0.))
    groups = {id(g['params'][0]): g for g in ctor(model).optimizer.param_groups}
    assert all(groups[id(m.weight)]['weight_decay'] == 0 for m in norms)
    with torch.no_grad():
        for m in norms:
            m.running_ms.uniform_(0.5, 2)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    before = model.backbone(x)
    assert fold_norms(model.backbone) == 53
    for a, b in zip(before, model.backbone(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


LAYER_NORMS = [n for n, s in NORMS.items() if s.layer is not None]


@pytest.mark.parametrize('name', LAYER_NORMS)
def test_bad_input_is_named(name):
    """Integer input and an empty batch get a message that names the problem and the fix."""
    layer = NORMS[name].build(4).train()
    with pytest.raises(TypeError, match=r'floating-point input, got torch.uint8.*x.float\(\)'):
        layer(torch.zeros(2, 4, 3, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'empty input of shape \(0, 4, 3, 3\)'):
        layer(torch.zeros(0, 4, 3, 3))


NORMDET_LAYERS = [n for n in LAYER_NORMS if n != 'SyncBN']  # SyncBN: torch's own constructor


OUT_OF_DOMAIN = [('num_features', 0), ('num_features', -3), ('num_features', 8.0),
                 ('num_features', True), ('eps', 0), ('eps', -1e-5), ('eps', float('nan')),
                 ('eps', '1e-5'), ('momentum', 1.5), ('momentum', -0.1), ('momentum', float('inf'))]


@pytest.mark.parametrize('name, arg, value', [
    (n, a, v) for n in NORMDET_LAYERS for a, v in OUT_OF_DOMAIN
    if a in inspect.signature(NORMS[n].layer_class.__init__).parameters])
def test_a_constructor_argument_out_of_its_domain_is_named(name, arg, value):
    """Every layer refuses a channel count, eps or momentum (where it takes one) outside its
    domain at construction, naming the argument and the value (eps <= 0 trained to NaN;
    num_features=0 built a layer that failed only on its first input)."""
    layer = NORMS[name].layer_class
    kwargs = {'num_features': 8, arg: value}
    with pytest.raises(ValueError, match=rf'{name} {arg} must be .*got {re.escape(repr(value))}'):
        layer(**kwargs)


@pytest.mark.parametrize('name', NORMDET_LAYERS)
def test_a_full_precision_input_of_another_dtype_runs_or_is_named(name):
    """A float64 input to a float32 layer (and the reverse) computes in the input's dtype, or is
    refused naming both dtypes and the conversion; never torch's "mixed dtype"."""
    for layer_dtype, x_dtype in ((torch.float32, torch.float64), (torch.float64, torch.float32)):
        layer = NORMS[name].build(4).to(layer_dtype).train()
        x = torch.randn(2, 4, 3, 3, dtype=x_dtype)
        try:
            assert layer(x).dtype == x_dtype
        except TypeError as e:
            assert str(layer_dtype) in str(e) and str(x_dtype) in str(e) and '.to(' in str(e)


def test_the_table_refuses_an_argument_its_layer_does_not_take():
    with pytest.raises(ConfigError, match=r"the DNB norm takes no argument 'bogus'; it takes eps, "
                                          r'momentum, reduction'):
        get_norm('DNB').build(8, bogus=1)
    for groups in (0, -4, 2.5):
        with pytest.raises(ConfigError, match=rf'GN num_groups must be a positive integer, got '
                                              rf'{groups}'):
            get_norm('GN').build(12, num_groups=groups)
    assert get_norm('GN').build(24).num_groups == 8  # gcd(32, 24): one setting for every width
    for key in ('batch_per_gpu', 'target_batch', 'num_groups'):
        with pytest.raises(ConfigError, match=rf'NormContext {key} must be a positive integer'):
            NormContext(**{key: 0})
    with pytest.raises(ConfigError, match=r"norm must be one name, one of BN, .*; got \['GN'\]"):
        get_norm(['GN'])


@pytest.mark.parametrize('name', LAYER_NORMS)
def test_non_finite_input_is_flagged_and_leaves_state(name):
    """A NaN in training never reaches a running buffer and flags the layer (device-side, read
    once per iteration by the training loop: normdet.layers.nonfinite_layers)."""
    from normdet.layers import nonfinite_layers
    layer = NORMS[name].build(4).train()
    layer(torch.randn(2, 4, 3, 3)).sum().backward()
    assert nonfinite_layers(layer) == []
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    x.data[1, 2, 0, 1] = float('nan')
    layer(x).sum().backward()
    assert nonfinite_layers(layer) == [type(layer).__name__]
    for k, v in layer.state_dict().items():
        if k in ('iters', 'num_batches_tracked') or not v.is_floating_point():
            continue  # counters count the step; training stops there
        if k in dict(layer.named_parameters()):
            continue
        assert torch.equal(v, before[k]), k


def test_unknown_kernels_choice_names_the_choices(monkeypatch):
    """A mistyped NORMDET_KERNELS is an error that lists the values, not a silent fallback."""
    from normdet.layers import FRN
    monkeypatch.setenv('NORMDET_KERNELS', 'cuda')
    with pytest.raises(ValueError, match="NORMDET_KERNELS='cuda' is not one of auto, torch, "
                                         "triton; unset it"):
        FRN(4)(torch.randn(2, 4, 3, 3))


@pytest.mark.parametrize('name', list(NORMS))
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('how', ['converted', 'autocast'])
@pytest.mark.parametrize('train', [True, False])
def test_every_layer_runs_in_half_and_bfloat16_on_the_cpu(name, dtype, how, train):
    """A layer converted to fp16/bf16 (``.to(dtype)``), or a float32 layer under autocast, runs
    forward and backward on the CPU: output in the input's dtype, finite, gradients finite."""
    torch.manual_seed(0)
    layer = NORMS[name].build(8).train(train)
    x = torch.randn(2, 8, 5, 5)
    if how == 'converted':
        layer, x = layer.to(dtype), x.to(dtype)
    x.requires_grad_()
    with torch.autocast('cpu', dtype=dtype, enabled=how == 'autocast'):
        y = layer(x.to(dtype))
    assert y.dtype == dtype
    y.float().square().sum().backward()
    assert torch.isfinite(y.float()).all() and torch.isfinite(x.grad.float()).all()
    for p in layer.parameters():
        assert p.grad is None or torch.isfinite(p.grad.float()).all()


@pytest.mark.parametrize('name', [n for n, spec in NORMS.items() if spec.batch_stats])
def test_every_batch_statistics_layer_refuses_one_value_per_channel(name):
    """As torch's BN does: a batch of 1 with 1x1 maps has no batch statistics to normalise by
    in training (MABN normalises by moving averages of E[x^2], which one value has)."""
    layer = NORMS[name].build(8).train()
    x = torch.randn(1, 8, 1, 1)
    if name == 'MABN':
        assert torch.isfinite(layer(x)).all()
        return
    with pytest.raises(ValueError, match='more than (one|1) value per channel'):
        layer(x)
    layer.eval()(x)  # in eval the running statistics serve
