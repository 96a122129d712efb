"""MABN against an independent float64 reference of the paper's equations, over many iterations
(warm-up, the renorm clamp, buffer wrap-around), plus CenConv2d and state/resume."""
import pytest
import torch

from conftest import in_layout, randn
from normdet.layers import MABN, CenConv2d, nonfinite_layers, raise_if_nonfinite

EPS = 1e-5


class MABNReference:
    """The equations of ../shared/methods.md, with plain Python histories instead of ring
    buffers: var and mean_gz average the last `buffer_size` iterations' values."""

    def __init__(self, C, buffer_size, warmup_iters, renorm_iters, r_max, momentum,
                 moving_averages='both'):
        self.bs, self.warmup, self.renorm, self.r_max, self.m = (
            buffer_size, warmup_iters, renorm_iters, r_max, momentum)
        # after warm-up, which statistics are moving averages (an ablation; 'both' is the paper)
        self.fwd = moving_averages in ('both', 'forward')
        self.bwd = moving_averages in ('both', 'backward')
        self.t, self.x2_hist, self.gz_hist = 0, [], []
        self.running_var = torch.ones(C, dtype=torch.float64)

    def step(self, x, w, b, dy):
        c = lambda v: v[None, :, None, None]  # noqa: E731
        self.t += 1
        warm = self.t <= self.bs or self.t < self.warmup
        M = x.shape[0] * x.shape[2] * x.shape[3]
        self.x2_hist.append((x ** 2).sum(dim=(0, 2, 3)) / M)
        var = (self.x2_hist[-1] if warm or not self.fwd
               else torch.stack(self.x2_hist[-self.bs:]).mean(0))
        if self.t <= max(self.renorm, self.warmup):
            r = torch.ones_like(var)
        else:
            r = torch.sqrt(var + EPS) / torch.sqrt(self.running_var + EPS)
            r = torch.minimum(torch.maximum(r, torch.full_like(r, 1 / self.r_max)),
                              torch.full_like(r, self.r_max))
        self.running_var = self.m * self.running_var + (1 - self.m) * var
        z = x / c(torch.sqrt(var + EPS))
        y = c(w) * c(r) * z + c(b)
        g = dy * c(w) * c(r)
        self.gz_hist.append((g * z).sum(dim=(0, 2, 3)) / M)
        mean_gz = (self.gz_hist[-1] if warm or not self.bwd
                   else torch.stack(self.gz_hist[-self.bs:]).mean(0))
        dx = (g - z * c(mean_gz)) / c(torch.sqrt(var + EPS))
        dw = (dy * c(r) * z).sum(dim=(0, 2, 3))
        db = dy.sum(dim=(0, 2, 3))
        return y, dx, dw, db

    def eval(self, x, w, b):
        return (w[None, :, None, None] * x / torch.sqrt(self.running_var + EPS)[None, :, None, None]
                + b[None, :, None, None])


CFG = dict(buffer_size=3, warmup_iters=2, renorm_iters=5, r_max=1.5, momentum=0.9)


def make_pair(C=4, **kwargs):
    layer = MABN(C, **CFG, **kwargs).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    return layer, MABNReference(C, **CFG, **kwargs)


def batch(it, N=2, C=4):
    """Inputs whose scale changes over iterations so the moving averages and the clamp matter."""
    g = torch.Generator().manual_seed(it)
    scale = 0.3 + 2.5 * (it % 4)
    x = torch.randn(N, C, 3, 5, dtype=torch.float64, generator=g) * scale + 0.2
    return x.requires_grad_(), torch.randn(N, C, 3, 5, dtype=torch.float64, generator=g)


def step_layer(layer, x, dy):
    for p in (x, layer.weight, layer.bias):
        p.grad = None
    y = layer(x)
    y.backward(dy)
    return y.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


@pytest.mark.parametrize('N', [1, 2])
def test_matches_reference_over_iterations(N):
    layer, ref = make_pair()
    w, b = layer.weight.detach(), layer.bias.detach()
    for it in range(12):  # warm-up, buffer wrap-around (size 3), clamp after iteration 5
        x, dy = batch(it, N=N)
        got = step_layer(layer, x, dy)
        want = ref.step(x.detach(), w, b, dy)
        for g, wt, what in zip(got, want, ('y', 'dx', 'dweight', 'dbias')):
            torch.testing.assert_close(g, wt, rtol=1e-10, atol=1e-10, msg=f'{what} at it {it}')
        torch.testing.assert_close(layer.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    assert int(layer.iters) == 12
    x, _ = batch(99, N=N)
    torch.testing.assert_close(layer.eval()(x), ref.eval(x.detach(), w, b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('moving', ['forward', 'backward', 'none'])
def test_one_moving_average_alone_matches_reference(moving):
    """The ablation of MABN's two moving averages: after warm-up only the forward's (x^2), only
    the backward's (g z), or neither is averaged over iterations; the rest is the paper's."""
    layer, ref = make_pair(moving_averages=moving)
    w, b = layer.weight.detach(), layer.bias.detach()
    for it in range(12):
        x, dy = batch(it)
        got = step_layer(layer, x, dy)
        want = ref.step(x.detach(), w, b, dy)
        for g, wt, what in zip(got, want, ('y', 'dx', 'dweight', 'dbias')):
            torch.testing.assert_close(g, wt, rtol=1e-10, atol=1e-10, msg=f'{what} at it {it}')
    with pytest.raises(ValueError, match="moving_averages must be one of both, forward"):
        MABN(4, moving_averages='fwd')


def test_matches_reference_at_the_papers_defaults():
    """The paper's detection settings (buffer 16, warm-up 100, renorm after 1000 iterations,
    r_max 5, momentum 0.98), over 1040 iterations: the moving averages, the switch from
    warm-up to the buffer, and the renormalisation that starts at iteration 1001."""
    layer = MABN(4).double()
    ref = MABNReference(4, buffer_size=16, warmup_iters=100, renorm_iters=1000, r_max=5.0,
                        momentum=0.98)
    w, b = layer.weight.detach(), layer.bias.detach()
    r_not_one = False
    for it in range(1040):
        g = torch.Generator().manual_seed(it)
        x = (torch.randn(2, 4, 2, 3, dtype=torch.float64, generator=g)
             * (0.5 + (it // 50) % 3)).requires_grad_()  # scale drifts: r moves off 1
        dy = torch.randn(2, 4, 2, 3, dtype=torch.float64, generator=g)
        got = step_layer(layer, x, dy)
        if it in (0, 15, 16, 99, 100, 101, 500, 999, 1000, 1001, 1039):
            want = ref.step(x.detach(), w, b, dy)
            for u, v, what in zip(got, want, ('y', 'dx', 'dweight', 'dbias')):
                torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9, msg=f'{what} at it {it}')
            torch.testing.assert_close(layer.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
            if it >= 1000:
                var = torch.stack(ref.x2_hist[-16:]).mean(0)
                r_not_one |= bool(((var + EPS) / (ref.running_var + EPS) - 1).abs().max() > 0.05)
        else:
            ref.step(x.detach(), w, b, dy)
    assert int(layer.iters) == 1040 and r_not_one


@pytest.mark.parametrize('reentrant', [True, False])
def test_activation_checkpointing_counts_one_step(reentrant):
    """mmdet's with_cp=True recomputes the forward inside backward: MABN advances once per step
    and gives the gradients of the step without checkpointing."""
    from torch.utils.checkpoint import checkpoint
    torch.manual_seed(0)
    conv = CenConv2d(3, 4, 3, padding=1).double()
    plain, cp = MABN(4, **CFG).double(), MABN(4, **CFG).double()
    for it in range(7):
        x, dy = batch(it, C=3)
        dy = dy[:, :1].expand(-1, 4, -1, -1).contiguous()
        for layer, use_cp in ((plain, False), (cp, True)):
            conv.zero_grad()
            xi = x.detach().requires_grad_()
            f = lambda t, layer=layer: layer(conv(t))  # noqa: E731
            y = checkpoint(f, xi, use_reentrant=reentrant) if use_cp else f(xi)
            y.backward(dy)
            grads = (xi.grad, conv.weight.grad.clone(), layer.weight.grad.clone())
            layer.weight.grad = None
            if use_cp:
                for u, v in zip(grads, ref_grads):
                    torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)
            ref_grads = grads
        assert int(cp.iters) == int(plain.iters) == it + 1
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(cp.state_dict()[k], v, rtol=1e-12, atol=1e-12)


def test_clamp_binds():
    """The scenario above must exercise r != 1 and the clamp, or it tests nothing."""
    layer, ref = make_pair()
    rs = []
    for it in range(12):
        x, dy = batch(it)
        ref.step(x.detach(), layer.weight.detach(), layer.bias.detach(), dy)
        var = torch.stack(ref.x2_hist[-3:]).mean(0)
        rs.append(torch.sqrt(var + EPS) / torch.sqrt(ref.running_var + EPS))
    assert max(float(r.max()) for r in rs[5:]) > 1.5 or min(float(r.min()) for r in rs[5:]) < 1 / 1.5


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_warmup_backward_is_exact_gradient(layout):
    layer = MABN(3, warmup_iters=10 ** 6).double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
    x, grad_in = in_layout(randn(2, 3, 3, 2), layout)
    assert torch.autograd.gradcheck(lambda x, w, b: grad_in(layer(x)), (x, layer.weight,
                                                                      layer.bias))


def test_buffers_and_counter_in_state_dict_and_resume_is_exact():
    full, _ = make_pair()
    half, _ = make_pair()
    half.load_state_dict(full.state_dict())
    for it in range(5):
        step_layer(full, *batch(it))
        step_layer(half, *batch(it))
    sd = half.state_dict()
    assert {'x2_buffer', 'gz_buffer', 'iters', 'running_var'} <= set(sd)
    resumed = MABN(4, **CFG).double()
    resumed.load_state_dict(sd)
    for it in range(5, 12):
        a, b = step_layer(full, *batch(it)), step_layer(resumed, *batch(it))
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=0, atol=0)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=0)


def test_autocast_bf16_and_float32_buffers():
    layer = MABN(4)
    x = torch.randn(2, 4, 6, 6) * 2
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16 and layer.x2_buffer.dtype == torch.float32
    xd = x.bfloat16().double()
    want = xd / torch.sqrt((xd ** 2).mean(dim=(0, 2, 3)) + EPS)[None, :, None, None]
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=2e-2)
    y.float().sum().backward()


def test_channels_last():
    a, _ = make_pair()
    b, _ = make_pair()
    b.load_state_dict(a.state_dict())
    for it in range(6):
        x, dy = batch(it)
        xb = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        ra = step_layer(a, x, dy)
        rb = step_layer(b, xb, dy.contiguous(memory_format=torch.channels_last))
        for u, v in zip(ra, rb):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_non_finite_input_leaves_state_untouched():
    """No host sync in training: a NaN input flags the layer (read once per iteration by the
    training loop) and leaves the moving averages and running_var as they were."""
    layer = MABN(4)
    layer(torch.randn(2, 4, 3, 3)).sum().backward()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    x.data[0, 1, 0, 0] = float('nan')
    layer(x).sum().backward()
    for k, v in layer.state_dict().items():
        if k != 'iters':  # the counter counts the step (training stops there)
            assert torch.equal(v, before[k]), k
    assert nonfinite_layers(layer) == ['MABN'] and nonfinite_layers(layer) == []
    with pytest.raises(FloatingPointError, match='MABN got non-finite'):
        layer(x)
        raise_if_nonfinite(layer)


def test_bad_input():
    with pytest.raises(ValueError, match='4-D'):
        MABN(4)(torch.randn(4, 4, 4))
    with pytest.raises(ValueError, match='built for 4 channels'):
        MABN(4)(torch.randn(2, 8, 3, 3))
    with pytest.raises(ValueError, match='buffer_size'):
        MABN(4, buffer_size=0)


def test_cenconv_centres_each_filter():
    conv = CenConv2d(3, 5, 3, padding=1, bias=True).double()
    x = randn(2, 3, 6, 6)
    w = conv.weight.detach()
    w_c = w - w.mean(dim=(1, 2, 3), keepdim=True)
    want = torch.nn.functional.conv2d(x, w_c, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), want)
    # a constant input sees zero-mean filters: the output is the bias alone (away from padding)
    out = conv(torch.ones(1, 3, 6, 6, dtype=torch.float64))
    torch.testing.assert_close(out[0, :, 2:4, 2:4],
                               conv.bias.detach()[:, None, None].expand(5, 2, 2))
    assert torch.autograd.gradcheck(lambda x, w, b: conv(x), (x, conv.weight, conv.bias))


@pytest.mark.parametrize('centre_depthwise', [True, False])
def test_cenconv_depthwise(centre_depthwise):
    """A depthwise CenConv: centred over its 3x3 taps (the equation as written: a constant input
    then gives the bias alone), or left plain with centre_depthwise=False; grouped convs that are
    not depthwise are centred either way, and folding keeps what the forward computes."""
    from normdet.norms.fuse import plain_conv
    conv = CenConv2d(4, 4, 3, padding=1, groups=4, centre_depthwise=centre_depthwise).double()
    x = randn(2, 4, 6, 6)
    w = conv.weight.detach()
    w_used = w - w.mean(dim=(1, 2, 3), keepdim=True) if centre_depthwise else w
    want = torch.nn.functional.conv2d(x, w_used, conv.bias, padding=1, groups=4)
    torch.testing.assert_close(conv(x), want)
    torch.testing.assert_close(plain_conv(conv)(x), want)
    flat = conv(torch.ones(1, 4, 6, 6, dtype=torch.float64))[0, :, 2:4, 2:4]
    bias = conv.bias.detach()[:, None, None].expand(4, 2, 2)
    assert torch.allclose(flat, bias) == centre_depthwise
    grouped = CenConv2d(4, 4, 3, groups=2, centre_depthwise=centre_depthwise)
    assert grouped.centred


def test_float32_layer_trains_on_float64_input():
    """A float32 MABN fed float64 activations (statistics in float64) keeps float32 state: its
    ring buffers and running variance take the statistics cast to their dtype, past warm-up as
    in it."""
    layer = MABN(4, warmup_iters=1, buffer_size=1, renorm_iters=1).train()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    for _ in range(3):
        layer(x).sum().backward()
    assert x.grad.dtype == torch.float64 and torch.isfinite(x.grad).all()
    for name in ('running_var', 'x2_buffer', 'gz_buffer'):
        buf = getattr(layer, name)
        assert buf.dtype == torch.float32 and torch.isfinite(buf).all(), name
    assert not torch.equal(layer.running_var, torch.ones(4))
