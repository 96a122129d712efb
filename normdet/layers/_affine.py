"""The fast path of normdet's FRN, MABN and DN layers: a per-(sample, channel) affine map whose
coefficients are a small function of the input's statistics, with a hand-derived backward that
makes the fewest passes over the activation. FRN and MABN write their small part by hand
(``_FRNFunction``, ``_MABNFunction``) on the four primitives below; DN-B/DN-C, whose SC module
makes the small part a network, use :class:`StatAffine`, which differentiates it with autograd.

In training (and FRN/DN-B in eval) each of these layers is, for x of shape (N, C, H, W):

    stats   per (n, c) over (H, W):  'moments': m = mean x, v = mean (x - m)^2 (biased)
                                     'nu2':     nu2 = mean x^2
    coeffs  (A, B) = coeffs(*stats)     (N, C) or (1, C) tensors: any autograd graph over the
                                        statistics and the layer's parameters (FRN: A = gamma
                                        rsqrt(nu2 + eps); DN: BN plus the SC module)
    output  y = A x + B,  then TLU z = max(y, tau) when ``tau`` is given

Backward, for g = dL/dz (TLU: g where y > tau, and the rest summed into d tau):

    dA = sum_hw g x,  dB = sum_hw g                      one pass over (g, x)
    (g_stats, g_params) = autograd of coeffs on (dA, dB)  N x C values, not the activation
    dx = A g + c1 + c2 x                                  one pass:  'moments': c2 = 2 g_v / HW,
                                                          c1 = g_m / HW - c2 m;  'nu2':
                                                          c2 = 2 g_nu2 / HW, c1 = 0

so a forward is two passes over x (statistics, output) and a backward two (reductions, dx), as a
fused BatchNorm makes. Nothing is saved but the input, the output and N x C tensors. The
activation passes run as fused Triton kernels on CUDA (``normdet.layers._triton``, fp32 and
bf16/fp16, NCHW and channels_last) and as a few PyTorch ops elsewhere; both compute in float32
and return the input's dtype. ``NORMDET_KERNELS=torch`` forces the PyTorch path everywhere (the
reference the kernels are tested against), ``=triton`` forces the kernels (the tests run them on
the CPU under ``TRITON_INTERPRET=1``).
"""
import functools
import os

import torch


@functools.cache
def _triton_ops():
    try:
        from . import _triton
    except ImportError:  # no triton in this environment: the PyTorch path serves every device
        return None
    return _triton


def backend(x: torch.Tensor):
    """The primitive implementation for ``x``: the Triton kernels on CUDA (or when forced), the
    PyTorch ops otherwise."""
    choice = os.environ.get('NORMDET_KERNELS', 'auto')
    if choice == 'torch':
        return TorchOps
    if x.dtype == torch.float64:
        return TorchOps
    if choice == 'triton' or (x.is_cuda and choice == 'auto'):
        ops = _triton_ops()
        if ops is not None:
            return ops
        if choice == 'triton':
            raise RuntimeError('NORMDET_KERNELS=triton but triton is not installed')
    return TorchOps


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 inputs (the references), float32 for everything else."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _f32(x):
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _nc(t: torch.Tensor) -> torch.Tensor:
    return t.view(t.shape[0], t.shape[1], 1, 1)


def _sumsq(x32: torch.Tensor) -> torch.Tensor:
    """Per-(n, c) sum of squares over (H, W), one pass in either memory layout."""
    if x32.is_contiguous():
        return torch.linalg.vector_norm(x32, dim=(2, 3)).square()
    return torch.linalg.vecdot(x32.flatten(2), x32.flatten(2))  # channels_last: no copy


class TorchOps:
    """The activation passes in PyTorch ops (CPU, and the reference for the kernels). Every
    backend has these four functions; A, B are (N, C) in the compute dtype, tau (C,) or None.
    Written to allocate only their outputs where they can (large temporaries cost page faults
    on the CPU) and to avoid the slow broadcasting kernels (addcmul, where)."""

    @staticmethod
    def stats(x: torch.Tensor, kind: str):
        """'nu2': (mean x^2,); 'moments': (mean, biased variance), per (n, c) over (H, W)."""
        hw = x.shape[2] * x.shape[3]
        x32 = _f32(x)
        if kind == 'nu2':
            return (_sumsq(x32) / hw,)
        m = x32.sum(dim=(2, 3)) / hw
        # two passes: sum (x - m)^2 does not cancel as E[x^2] - m^2 does in float32
        return m, _sumsq(x32 - _nc(m)) / hw

    @staticmethod
    def affine(x, A, B, tau):
        """A x + B, then max(., tau) when tau is given, in x's dtype."""
        y = (_f32(x) * _nc(A)).add_(_nc(B))
        if tau is not None:
            y = y.clamp_(min=tau.view(1, -1, 1, 1))
        return y.to(x.dtype)

    @staticmethod
    def grad_sums(gz, x, A, B, z, tau):
        """(dA, dB, dtau, aux): per-(n, c) sums over (H, W) of g x and g, where g is gz masked by
        TLU (where y > tau), tau's gradient (None without TLU), and what input_grad reuses."""
        g, x32 = _f32(gz), _f32(x)
        dtau = None
        if tau is not None:
            full = g.sum(dim=(0, 2, 3))
            # where y = A x + B > tau, with y recomputed from x: the output may have been
            # changed in place since (an inplace activation after the layer), and a bf16/fp16
            # output rounds tau itself
            y = TorchOps.affine(x32, A, B, None).sub_(tau.view(1, -1, 1, 1))
            g = torch.ops.aten.threshold_backward(g, y, 0.)
        dA = torch.linalg.vecdot(g.flatten(2), x32.flatten(2))
        dB = g.sum(dim=(2, 3))
        if tau is not None:
            dtau = full - dB.sum(0)
        return dA, dB, dtau, g

    @staticmethod
    def input_grad(gz, x, A, B, z, tau, c1, c2, aux):
        """A g + c1 + c2 x (c1 None: 0), in x's dtype; ``aux`` is grad_sums' masked g."""
        dx = _f32(x) * _nc(c2)
        if c1 is not None:
            dx = dx.add_(_nc(c1))
        return dx.addcmul_(aux, _nc(A)).to(x.dtype)


def _full(t: torch.Tensor, n: int) -> torch.Tensor:
    """An (N, C) view of a (1, C) or (N, C) coefficient, without autograd."""
    t = t.detach()
    return t.expand(n, -1) if t.shape[0] == 1 else t


def _fold(d: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The gradient of a (1, C) coefficient from its per-sample gradient."""
    return (d.sum(0, keepdim=True) if like.shape[0] == 1 else d).to(like.dtype)


class StatAffine(torch.autograd.Function):
    """``z = A x + B`` (then TLU) with ``(A, B) = coeffs(*stats(x))``; see the module docstring.
    ``coeffs`` may use any of ``params`` (the tensors passed as inputs, so that autograd routes
    their gradients here) and read buffers; it runs with autocast off."""

    @staticmethod
    def forward(ctx, x, tau, kind, coeffs, *params):
        ops = backend(x)
        stats = ops.stats(x, kind)
        with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
            leaves = [s.detach().requires_grad_() for s in stats]
            A, B = coeffs(*leaves)
        n = x.shape[0]
        A_, B_ = _full(A, n), _full(B, n)
        tau32 = None if tau is None else tau.detach().to(A_.dtype)
        z = ops.affine(x, A_, B_, tau32)
        ctx.save_for_backward(x)  # not z: an inplace op after the layer may change it
        ctx.graph = (A, B, leaves, params, stats, tau)
        ctx.kind, ctx.ops = kind, ops
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gz):
        x, = ctx.saved_tensors
        z = None
        A, B, leaves, params, stats, tau = ctx.graph
        ops, n = ctx.ops, x.shape[0]
        A_, B_ = _full(A, n), _full(B, n)
        tau32 = None if tau is None else tau.detach().to(A_.dtype)
        dA, dB, dtau, aux = ops.grad_sums(gz, x, A_, B_, z, tau32)
        wrt = leaves + [p for p in params if p.requires_grad]
        outs = [(t, _fold(d, t)) for t, d in ((A, dA), (B, dB)) if t.requires_grad]
        # retain_graph: the small graph is N x C values, and gradcheck backpropagates twice
        grads = torch.autograd.grad([o for o, _ in outs], wrt, [d for _, d in outs],
                                    allow_unused=True, retain_graph=True) if outs else \
            [None] * len(wrt)
        zero = torch.zeros_like(stats[0])
        g_stats = [zero if g is None else g for g in grads[:len(leaves)]]
        g_params = iter(grads[len(leaves):])
        hw = x.shape[2] * x.shape[3]
        if ctx.kind == 'nu2':
            c1, c2 = None, g_stats[0] * (2 / hw)
        else:
            c2 = g_stats[1] * (2 / hw)
            c1 = g_stats[0] / hw - c2 * stats[0]
        dx = ops.input_grad(gz, x, A_, B_, z, tau32, c1, c2, aux)
        d_params = [next(g_params) if p.requires_grad else None for p in params]
        return (dx, None if dtau is None else dtau.to(tau.dtype), None, None, *d_params)


def stat_affine(x, kind: str, coeffs, params, tau=None) -> torch.Tensor:
    """Apply :class:`StatAffine`; without autograd (inference, no_grad) the same computation
    runs without recording the small graph."""
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)
                                    or (tau is not None and tau.requires_grad)):
        return StatAffine.apply(x, tau, kind, coeffs, *params)
    ops = backend(x)
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        A, B = coeffs(*ops.stats(x, kind))
        n = x.shape[0]
        return ops.affine(x, _full(A, n), _full(B, n), None if tau is None else tau.to(A.dtype))
