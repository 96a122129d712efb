"""FRN+TLU against an independent float64 reference of the paper's equations."""
import pytest
import torch

from conftest import assert_close_all, forward_backward, in_layout, randn
from normdet.layers import FRN


def frn_reference(x, gamma, beta, tau, eps):
    """Paper, eq. 1-3: nu2 = mean_{h,w} x^2; y = gamma x / sqrt(nu2 + eps) + beta; max(y, tau)."""
    nu2 = (x * x).sum(dim=(2, 3), keepdim=True) / (x.shape[2] * x.shape[3])
    y = gamma[None, :, None, None] * x / torch.sqrt(nu2 + eps) + beta[None, :, None, None]
    return y if tau is None else torch.where(y > tau[None, :, None, None], y, tau[None, :, None, None])


def make(C, tlu=True, learnable_eps=False):
    layer = FRN(C, tlu=tlu, learnable_eps=learnable_eps).double()
    with torch.no_grad():  # non-trivial parameters so every term of the equation matters
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
        if tlu:
            layer.tau.uniform_(-0.3, 0.3)
    return layer


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('tlu', [True, False])
@pytest.mark.parametrize('train', [True, False])
def test_matches_reference(batch, tlu, train):
    layer = make(6, tlu=tlu).train(train)
    x = randn(batch, 6, 5, 4, scale=2.0, shift=0.3)
    dy = torch.randn(batch, 6, 5, 4, dtype=torch.float64)
    params = [layer.weight, layer.bias] + ([layer.tau] if tlu else [])
    got = forward_backward(layer, x, params, dy)
    want = forward_backward(
        lambda t: frn_reference(t, layer.weight, layer.bias, layer.tau, 1e-6), x, params, dy)
    assert_close_all([got[0], *got[1]], [want[0], *want[1]], rtol=1e-10, atol=1e-10)


def test_learnable_eps_matches_reference_and_gets_gradient():
    layer = make(3, learnable_eps=True)
    x = randn(2, 3, 1, 1)  # 1x1 maps: where eps matters
    y = layer(x)
    want = frn_reference(x, layer.weight, layer.bias, layer.tau, 1e-6 + layer.eps_l.abs())
    torch.testing.assert_close(y, want)
    y.sum().backward()
    assert layer.eps_l.grad is not None and layer.eps_l.grad.abs().item() > 0


def test_auto_learnable_eps_only_on_1x1_maps():
    """learnable_eps='auto' (normdet's configs): eps + |eps_l| on 1x1 inputs, the paper's fixed
    eps on larger ones, where eps_l stays in the graph with a zero gradient (DDP needs every
    parameter in the graph)."""
    layer = make(3, learnable_eps='auto')
    with torch.no_grad():
        layer.eps_l.fill_(0.3)  # large, so using it or not shows in the output
    x = randn(2, 3, 1, 1)
    y = layer(x)
    torch.testing.assert_close(y, frn_reference(x, layer.weight, layer.bias, layer.tau, 1e-6 + 0.3))
    y.sum().backward()
    assert layer.eps_l.grad.abs().item() > 0
    layer.eps_l.grad = None
    x = randn(2, 3, 4, 4)
    y = layer(x)
    torch.testing.assert_close(y, frn_reference(x, layer.weight, layer.bias, layer.tau, 1e-6))
    y.sum().backward()
    assert layer.eps_l.grad is not None and layer.eps_l.grad.item() == 0
    with pytest.raises(ValueError, match='learnable_eps must be one of'):
        FRN(3, learnable_eps='yes')


def test_learnable_eps_keeps_the_gradient_alive_on_1x1_maps():
    """On a 1x1 map FRN with a fixed eps is sign(x): its input gradient vanishes (the issue's
    3.2e-6 median against 0.675 on a 10x10 map); the learnable eps (1e-4 at init) keeps it
    about 50x larger, and it grows as eps_l is learned."""
    x = torch.randn(64, 32, 1, 1, requires_grad=True)

    def median_grad(layer):
        x.grad = None
        layer(x).backward(torch.randn(64, 32, 1, 1, generator=torch.Generator().manual_seed(0)))
        return x.grad.abs().median().item()
    fixed, learned = median_grad(FRN(32, tlu=False)), median_grad(FRN(32, tlu=False,
                                                                    learnable_eps='auto'))
    assert fixed < 1e-5 and learned > 1e-4 and learned > 20 * fixed


def test_init_is_identity_affine_and_relu_like():
    layer = FRN(4)
    assert torch.equal(layer.weight, torch.ones(4)) and torch.equal(layer.bias, torch.zeros(4))
    assert torch.equal(layer.tau, torch.zeros(4))
    x = torch.randn(2, 4, 3, 3)
    assert (layer(x) >= 0).all()


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('tlu', [True, False])
def test_gradcheck(tlu, layout):
    layer = make(3, tlu=tlu, learnable_eps=True)
    x, grad_in = in_layout(randn(2, 3, 3, 2), layout)
    params = tuple(p for p in layer.parameters())
    assert torch.autograd.gradcheck(lambda x, *p: grad_in(layer(x)), (x, *params))


def test_train_equals_eval_and_batch_independent():
    layer = make(4)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    y_train = layer.train()(x)
    torch.testing.assert_close(layer.eval()(x), y_train)
    torch.testing.assert_close(layer(x[:1]), y_train[:1])


def test_autocast_bf16():
    layer = make(4).float()
    x = torch.randn(2, 4, 6, 6) * 3
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    want = frn_reference(x.bfloat16().double(), layer.weight.double(), layer.bias.double(),
                         layer.tau.double(), 1e-6)
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=2e-2)


def test_channels_last():
    layer = make(4)
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64)
    dy = torch.randn_like(x)
    xa = x.clone().requires_grad_()
    xb = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    ya, ga = forward_backward(layer, xa, list(layer.parameters()), dy)
    yb, gb = forward_backward(layer, xb, list(layer.parameters()),
                              dy.contiguous(memory_format=torch.channels_last))
    assert yb.is_contiguous(memory_format=torch.channels_last)
    assert_close_all([yb, *gb], [ya, *ga], rtol=1e-12, atol=1e-12)


def test_bad_input():
    layer = FRN(4)
    with pytest.raises(ValueError, match='4-D'):
        layer(torch.randn(2, 4))
    with pytest.raises(ValueError, match='built for 4 channels'):
        layer(torch.randn(2, 3, 5, 5))
