import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    """The module's tests generate the synthetic dataset into a temporary folder of their own
    (never the repository's data/), with no real data root set."""
    mp = pytest.MonkeyPatch()
    mp.setenv('NORMDET_SYNTHETIC_DATA', str(tmp_path_factory.mktemp('synthetic')))
    mp.delenv('NORMDET_DATA_ROOT', raising=False)
    yield
    mp.undo()


def randn(*shape, scale=1.0, shift=0.0, dtype=torch.float64):
    return (torch.randn(*shape, dtype=dtype) * scale + shift).requires_grad_()


class _GradIn(torch.autograd.Function):
    """Identity whose backward hands on the gradient in the given memory layout."""

    @staticmethod
    def forward(ctx, y, layout):
        ctx.layout = layout
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous(memory_format=ctx.layout), None


def in_layout(x, layout):
    """``x`` in ``layout`` (a leaf again), with the gradient of whatever is computed from it
    arriving in that layout too (gradcheck's own grad outputs are NCHW): a layer's backward
    then takes its channels_last path under gradcheck."""
    x = x.detach().contiguous(memory_format=layout).requires_grad_()
    return x, (lambda y: _GradIn.apply(y, layout))


def forward_backward(fn, x, params, dy):
    """Run fn(x), backprop dy; return output and grads of x and params (detached)."""
    for p in [x, *params]:
        p.grad = None
    y = fn(x)
    y.backward(dy)
    return y.detach(), [t.grad.detach().clone() for t in [x, *params]]


def assert_close_all(got, want, **tol):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **tol)
