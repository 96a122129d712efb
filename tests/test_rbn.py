"""RBN: plain BN math with the scale initialised below 1, against a float64 reference."""
import pytest
import torch

from conftest import assert_close_all, forward_backward, randn
from normdet.layers import RBN, nonfinite_layers

EPS = 1e-5


def bn_reference(x, gamma, beta, mean=None, var=None):
    M = x.shape[0] * x.shape[2] * x.shape[3]
    if mean is None:
        mean = x.sum(dim=(0, 2, 3)) / M
        var = ((x - mean[None, :, None, None]) ** 2).sum(dim=(0, 2, 3)) / M
    x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var + EPS)[None, :, None, None]
    return gamma[None, :, None, None] * x_hat + beta[None, :, None, None]


def test_scale_initialised_below_one_and_survives_mmcv_init():
    layer = RBN(5)
    constant_init = pytest.importorskip('mmengine.model.weight_init').constant_init
    constant_init(layer, 1, bias=0)  # what mmcv's ConvModule.init_weights does to its norm
    assert torch.equal(layer.scale, torch.full((5,), 0.1))
    assert torch.equal(RBN(5, bn_weight=0.25).scale, torch.full((5,), 0.25))
    assert torch.equal(layer.bias, torch.zeros(5))


@pytest.mark.parametrize('N', [1, 2])
@pytest.mark.parametrize('train', [True, False])
def test_matches_reference(N, train):
    layer = RBN(6).double()
    with torch.no_grad():
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 2)
        layer.bias.uniform_(-0.5, 0.5)
    rm, rv = layer.running_mean.clone(), layer.running_var.clone()
    layer.train(train)
    x = randn(N, 6, 4, 3, scale=2.0, shift=0.4)
    dy = torch.randn(N, 6, 4, 3, dtype=torch.float64)
    params = [layer.scale, layer.bias]
    got = forward_backward(layer, x, params, dy)
    ref = (lambda t: bn_reference(t, layer.scale, layer.bias)) if train else (
        lambda t: bn_reference(t, layer.scale, layer.bias, rm, rv))
    want = forward_backward(ref, x, params, dy)
    assert_close_all([got[0], *got[1]], [want[0], *want[1]], rtol=1e-10, atol=1e-10)
    if train:
        torch.testing.assert_close(layer.running_mean, 0.9 * rm + 0.1 * x.detach().mean((0, 2, 3)))
        torch.testing.assert_close(layer.running_var,
                                   0.9 * rv + 0.1 * x.detach().var((0, 2, 3), unbiased=True))
    else:
        assert torch.equal(layer.running_mean, rm)


@pytest.mark.parametrize('train', [True, False])
def test_gradcheck(train):
    layer = RBN(3, momentum=0.0).double().train(train)
    x = randn(2, 3, 3, 2)
    assert torch.autograd.gradcheck(lambda x, w, b: layer(x), (x, layer.scale, layer.bias))


def test_autocast_bf16_and_channels_last():
    layer = RBN(4, bn_weight=0.5)
    x = torch.randn(2, 4, 5, 5) * 2
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    want = bn_reference(x.bfloat16().double(), layer.scale.double().detach(),
                        layer.bias.double().detach())
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=2e-2)
    a, b = RBN(4).double(), RBN(4).double()
    xd = x.double()
    dy = torch.randn_like(xd)
    ra = forward_backward(a, xd.clone().requires_grad_(), [a.scale, a.bias], dy)
    rb = forward_backward(b, xd.contiguous(memory_format=torch.channels_last).requires_grad_(),
                          [b.scale, b.bias], dy.contiguous(memory_format=torch.channels_last))
    assert_close_all([rb[0], *rb[1]], [ra[0], *ra[1]], rtol=1e-10, atol=1e-10)


def test_bad_input():
    layer = RBN(4)
    with pytest.raises(ValueError, match='4-D'):
        layer(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match='built for 4 channels'):
        layer(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match='more than one value per channel'):
        layer(torch.randn(1, 4, 1, 1))
    x = torch.randn(2, 4, 3, 3)
    x[0, 0, 0, 0] = float('nan')
    layer(x)  # no host sync in training: the layer flags it, the buffers stay
    assert torch.equal(layer.running_mean, torch.zeros(4))
    assert torch.equal(layer.running_var, torch.ones(4))
    assert nonfinite_layers(layer) == ['RBN'] and nonfinite_layers(layer) == []


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf'), 3e38])
def test_any_non_finite_statistic_is_caught_by_the_batch_variance(value):
    """RBN's local path checks only the variance that torch's kernel returns: a NaN or +-Inf
    input makes it NaN, and values whose squares overflow make it Inf (the kernel's mean, a
    running mean, stays finite for finite inputs). The buffers stay."""
    layer = RBN(8).train()
    x = torch.randn(3, 8, 4, 4)
    x[2, 5, 1, 2] = value
    x[1, 5, 0, 0] = -abs(value)
    before = layer.running_var.clone(), layer.running_mean.clone()
    layer(x)
    assert nonfinite_layers(layer) == ['RBN']
    assert torch.equal(layer.running_var, before[0]) and torch.equal(layer.running_mean, before[1])
    layer(torch.randn(3, 8, 4, 4))
    assert nonfinite_layers(layer) == []
