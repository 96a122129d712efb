"""DN-B and DN-C against an independent float64 reference of the equations (module docstring)."""
import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close_all, forward_backward, in_layout, randn
from normdet.layers import DNB, DNC, nonfinite_layers

EPS = 1e-5


def dn_reference(x, layer, mean=None, var=None):
    """BN-normalise, then (gamma + dgamma) x_hat + (beta + dbeta) with (dgamma, dbeta) from an
    SE-style MLP on per-sample (DN-B) or batch (DN-C) [mean, std]."""
    C = x.shape[1]
    M = x.shape[0] * x.shape[2] * x.shape[3]
    sc_var = var  # eval: DN-C's SC module sees the running statistics
    if mean is None:
        mean = x.sum(dim=(0, 2, 3)) / M
        var = ((x - mean[None, :, None, None]) ** 2).sum(dim=(0, 2, 3)) / M
        sc_var = var * M / (M - 1)  # training: the unbiased std, the quantity running_var tracks
    x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var + EPS)[None, :, None, None]
    normalized = layer.sc_input_kind == 'normalized'
    if isinstance(layer, DNB):
        hw = x.shape[2] * x.shape[3]
        s_mean = x.sum(dim=(2, 3)) / hw
        s_var = ((x - s_mean[:, :, None, None]) ** 2).sum(dim=(2, 3)) / hw
        if normalized:  # the per-sample mean and std of x_hat
            sd = torch.sqrt(var + EPS)[None]
            s = torch.cat([(s_mean - mean[None]) / sd, torch.sqrt(s_var + EPS) / sd], dim=1)
        else:
            s = torch.cat([s_mean, torch.sqrt(s_var + EPS)], dim=1)
    else:
        sd = torch.sqrt(sc_var + EPS)
        if normalized:
            s = torch.cat([mean / sd, torch.log(sd) - torch.log(sd).mean()])[None]
        else:
            s = torch.cat([mean, sd])[None]
    fc1, fc2 = layer.sc[0], layer.sc[2]
    h = torch.clamp(s @ fc1.weight.T + fc1.bias, min=0)
    o = h @ fc2.weight.T + fc2.bias
    if layer.weight is None:  # sc_form='literal': the SC module generates the whole affine
        gamma, beta = o[:, :C], o[:, C:]
    else:
        gamma = layer.weight[None] + o[:, :C]
        beta = layer.bias[None] + o[:, C:]
    return gamma[:, :, None, None] * x_hat + beta[:, :, None, None]


def make(cls, C=16, **kwargs):
    layer = cls(C, **kwargs).double()
    with torch.no_grad():  # a live SC module, so the dynamic part of the equation is tested
        for p in layer.sc.parameters():
            p.normal_(0, 0.3)
        if layer.weight is not None:
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
        else:  # literal: a scale near 1 from the SC module itself
            layer.sc[2].bias[:C].add_(1)
    return layer


# (sc_input, sc_form): the two SC inputs of the residual form, and the literal form
SC_VARIANTS = [('raw', 'residual'), ('normalized', 'residual'), ('raw', 'literal')]


@pytest.mark.parametrize('sc_input,sc_form', SC_VARIANTS)
@pytest.mark.parametrize('cls', [DNB, DNC])
@pytest.mark.parametrize('N', [1, 2])
def test_train_matches_reference(cls, N, sc_input, sc_form):
    layer = make(cls, sc_input=sc_input, sc_form=sc_form)
    x = randn(N, 16, 4, 3, scale=2.0, shift=0.5)
    dy = torch.randn(N, 16, 4, 3, dtype=torch.float64)
    params = list(layer.parameters())
    got = forward_backward(layer, x, params, dy)
    want = forward_backward(lambda t: dn_reference(t, layer), x, params, dy)
    assert_close_all([got[0], *got[1]], [want[0], *want[1]], rtol=1e-9, atol=1e-9)
    M = N * 12
    mean = x.detach().mean(dim=(0, 2, 3))
    unbiased = x.detach().var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(layer.running_mean, 0.1 * mean)
    torch.testing.assert_close(layer.running_var, 0.9 + 0.1 * unbiased)
    assert M > 1 and int(layer.num_batches_tracked) == 1


@pytest.mark.parametrize('sc_input,sc_form', SC_VARIANTS)
@pytest.mark.parametrize('cls', [DNB, DNC])
@pytest.mark.parametrize('N', [1, 2])
def test_eval_matches_reference(cls, N, sc_input, sc_form):
    layer = make(cls, sc_input=sc_input, sc_form=sc_form)
    with torch.no_grad():
        layer.running_mean.uniform_(-1, 1)
        layer.running_var.uniform_(0.5, 2)
    layer.eval()
    x = randn(N, 16, 4, 3, scale=2.0)
    dy = torch.randn(N, 16, 4, 3, dtype=torch.float64)
    params = list(layer.parameters())
    got = forward_backward(layer, x, params, dy)
    want = forward_backward(lambda t: dn_reference(t, layer, layer.running_mean,
                                                   layer.running_var), x, params, dy)
    assert_close_all([got[0], *got[1]], [want[0], *want[1]], rtol=1e-9, atol=1e-9)
    before = layer.running_mean.clone()
    layer(x)
    assert torch.equal(layer.running_mean, before)


def effective_scale(layer, x):
    """Training mode: the scale g[n, c] with y = g x_hat + b per sample and channel (x_hat the BN
    normalisation by batch statistics), by least squares over (H, W)."""
    with torch.no_grad():
        y = layer.train()(x)
        mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), keepdim=True,
                                                                unbiased=False)
        x_hat = (x - mean) / torch.sqrt(var + EPS)
        xc = x_hat - x_hat.mean(dim=(2, 3), keepdim=True)
        yc = y - y.mean(dim=(2, 3), keepdim=True)
        return (xc * yc).sum(dim=(2, 3)) / (xc * xc).sum(dim=(2, 3))


@pytest.mark.parametrize('cls', [DNB, DNC, torch.nn.BatchNorm2d])
def test_dnb_is_per_sample_and_dnc_batch_shared(cls):
    """DN-B: each sample's scale depends on that sample alone, and differs between samples.
    DN-C: one scale per channel shared by the batch, which depends on the batch. Plain BN (a
    fixed scale) is neither, so each claim fails for it."""
    x = randn(3, 16, 4, 4, scale=2.0, shift=0.5).detach()
    other = x.clone()
    other[1:] = other[1:] * 3 + 1  # the rest of the batch changes, sample 0 does not
    layer = make(cls).double() if cls is not torch.nn.BatchNorm2d else cls(16).double()
    g, g_other = effective_scale(layer, x), effective_scale(layer, other)
    per_sample = (torch.allclose(g[0], g_other[0], rtol=1e-9, atol=1e-9)
                  and not torch.allclose(g[0], g[1], rtol=1e-3, atol=1e-3))
    batch_shared = (torch.allclose(g[0], g[1], rtol=1e-9, atol=1e-9)
                    and not torch.allclose(g[0], g_other[0], rtol=1e-3, atol=1e-3))
    assert (per_sample, batch_shared) == (cls is DNB, cls is DNC)


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_normalized_sc_input_is_scale_invariant(cls):
    """sc_input='normalized': scaling the layer's input (as a conv's weights grow or decay)
    leaves the output unchanged, as BN's is; with the raw input it does not."""
    x = randn(2, 16, 4, 4, scale=2.0, shift=0.5).detach()
    for kind, invariant in (('normalized', True), ('raw', False)):
        layer = make(cls, sc_input=kind)
        with torch.no_grad():
            same = torch.allclose(layer(x), layer(x * 7.0), rtol=1e-5, atol=1e-5)  # eps aside
        assert same is invariant, kind


def test_dnc_sees_one_std_in_train_and_eval():
    """DN-C's SC input is the same quantity in train and eval (the unbiased std that running_var
    tracks): with momentum 1 the running statistics are this batch's, and the eval-time scale
    equals the training scale."""
    layer = make(DNC)
    layer.momentum = 1.0
    x = randn(2, 16, 3, 3, scale=2.0, shift=0.5).detach()
    g_train = effective_scale(layer, x)[0]
    a, _ = layer.eval().eval_affine()
    g_eval = a * torch.sqrt(layer.running_var + EPS)
    torch.testing.assert_close(g_eval, g_train, rtol=1e-9, atol=1e-9)
    y = layer(x)  # eval is that fixed affine
    s, t = layer.eval_affine()
    torch.testing.assert_close(y, x * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1))
    with pytest.raises(TypeError, match='no eval-time affine'):
        make(DNB).eval_affine()


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_starts_as_exact_bn(cls):
    layer, bn = cls(32), torch.nn.BatchNorm2d(32)
    x = torch.randn(2, 32, 5, 5) * 3 + 1
    torch.testing.assert_close(layer(x), bn(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.running_var, bn.running_var)
    torch.testing.assert_close(layer.eval()(x), bn.eval()(x), rtol=1e-5, atol=1e-5)
    assert layer.sc[0].out_features == 8  # max(32 // 16, 8) hidden units


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_literal_sc_form_generates_the_affine(cls):
    """sc_form='literal': no gamma, beta of the layer's own (nothing in the state dict), both
    FCs at PyTorch's default init, so the layer does not start as BN; every parameter learns."""
    torch.manual_seed(0)
    layer, bn = cls(32, sc_form='literal'), torch.nn.BatchNorm2d(32)
    assert layer.weight is None and layer.bias is None
    assert set(layer.state_dict()) == {'running_mean', 'running_var', 'num_batches_tracked',
                                       'sc.0.weight', 'sc.0.bias', 'sc.2.weight', 'sc.2.bias'}
    assert layer.sc[2].weight.abs().sum() > 0 and layer.sc[2].bias.abs().sum() > 0
    x = torch.randn(2, 32, 5, 5) * 3 + 1
    y = layer(x)
    assert not torch.allclose(y, bn(x), rtol=1e-2, atol=1e-2)
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    assert 'literal' in repr(layer) and 'literal' not in repr(cls(32))
    with pytest.raises(ValueError, match="sc_form must be one of"):
        cls(32, sc_form='generated')


@pytest.mark.parametrize('sc_input,sc_form', SC_VARIANTS)
@pytest.mark.parametrize('cls', [DNB, DNC])
@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_gradcheck(cls, train, sc_input, sc_form, layout):
    layer = make(cls, C=4, sc_input=sc_input, sc_form=sc_form).train(train)
    x, grad_in = in_layout(randn(2, 4, 3, 2), layout)
    params = tuple(layer.parameters())
    if train:  # each call updates running stats; gradcheck only needs the function to be pure
        layer.momentum = 0.0
    assert torch.autograd.gradcheck(lambda x, *p: grad_in(layer(x)), (x, *params))


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_autocast_bf16(cls):
    layer = make(cls).float()
    x = torch.randn(2, 16, 6, 6) * 2
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    with torch.no_grad():
        want = dn_reference(x.bfloat16().double(), _double_copy(layer))
    torch.testing.assert_close(y.double(), want, rtol=5e-2, atol=5e-2)


def _double_copy(layer):
    c = type(layer)(layer.num_features).double()
    c.load_state_dict(layer.state_dict())
    return c


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_channels_last(cls):
    a = make(cls)
    b = _double_copy(a)
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64)
    dy = torch.randn_like(x)
    ra = forward_backward(a, x.clone().requires_grad_(), list(a.parameters()), dy)
    rb = forward_backward(b, x.contiguous(memory_format=torch.channels_last).requires_grad_(),
                          list(b.parameters()), dy.contiguous(memory_format=torch.channels_last))
    assert_close_all([rb[0], *rb[1]], [ra[0], *ra[1]], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.running_var, b.running_var)


@pytest.mark.parametrize('cls', [DNB, DNC])
def test_bad_input(cls):
    layer = cls(8)
    with pytest.raises(ValueError, match='4-D'):
        layer(torch.randn(2, 8))
    with pytest.raises(ValueError, match='built for 8 channels'):
        layer(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match='more than one value per channel'):
        layer(torch.randn(1, 8, 1, 1))
    layer.eval()(torch.randn(1, 8, 1, 1))  # eval uses running stats: fine
    layer.train()
    x = torch.randn(2, 8, 3, 3)
    x[1, 2, 1, 1] = float('inf')
    before = layer.running_var.clone(), layer.running_mean.clone()
    layer(x)  # no host sync in training: the layer flags it, the buffers stay
    assert torch.equal(layer.running_var, before[0]) and torch.equal(layer.running_mean, before[1])
    assert nonfinite_layers(layer) == [cls.__name__] and nonfinite_layers(layer) == []


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf'), 3e30])
@pytest.mark.parametrize('cls', [DNB, DNC])
def test_any_non_finite_statistic_is_caught_by_the_batch_variance(cls, value):
    """The layer checks only the batch variance (var = mean(v + (m - mu)^2) is finite only if
    every per-sample mean m and variance v is): NaN, +-Inf and a finite value whose square
    overflows float32 are all caught, in one sample, and the buffers stay."""
    layer = cls(8).train()
    x = torch.randn(3, 8, 4, 4)
    x[2, 5, 1, 2] = value
    before = layer.running_var.clone(), layer.running_mean.clone()
    layer(x)
    assert nonfinite_layers(layer) == [cls.__name__]
    assert torch.equal(layer.running_var, before[0]) and torch.equal(layer.running_mean, before[1])
    layer(torch.randn(3, 8, 4, 4))
    assert nonfinite_layers(layer) == []
