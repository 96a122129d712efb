"""The activation passes of normdet's FRN, MABN and DN layers, shared by their hand-derived
forward and backward functions (``_FRNFunction``, ``_MABNFunction``, ``_DNFunction``).

In training (and FRN/DN-B in eval) each of these layers is, for x of shape (N, C, H, W), a
per-(sample, channel) affine map whose coefficients are a small function of x's statistics:

    stats   per (n, c) over (H, W):  'moments': m = mean x, v = mean (x - m)^2 (biased)
                                     'nu2':     nu2 = mean x^2
    output  y = A x + B  with A, B (N, C) from the statistics (FRN: A = gamma rsqrt(nu2 + eps);
            MABN: gamma r / std of its moving averages; DN: BN plus the SC module), then TLU
            z = max(y, tau) for FRN

and its backward, for g = dL/dz (TLU: g where y > tau, the rest summed into d tau), needs only

    dA = sum_hw g x,  dB = sum_hw g                  one pass over (g, x)
    dx = A g + c1 + c2 x                             one pass, c1, c2 (N, C) from the layer's
                                                     small backward (on N x C values)

so a forward is two passes over x (statistics, output) and a backward two (reductions, dx), as a
fused BatchNorm makes; nothing is saved but the input and N x C tensors (TLU's mask is
recomputed from x, since an inplace op after the layer may change its output). The passes run as
fused Triton kernels on CUDA (``normdet.layers._triton``, fp32 and bf16/fp16, NCHW and
channels_last) and as a few PyTorch ops elsewhere (:class:`TorchOps`); both compute in float32
(float64 for float64 inputs) and return the input's dtype. ``NORMDET_KERNELS=torch`` forces the
PyTorch path everywhere (the reference the kernels are tested against), ``=triton`` forces the
kernels (the tests run them on the CPU under ``TRITON_INTERPRET=1``).
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
    def grad_sums(gz, x, A, B, tau):
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
    def input_grad(gz, x, A, B, tau, c1, c2, aux):
        """A g + c1 + c2 x (c1 None: 0), in x's dtype; ``aux`` is grad_sums' masked g."""
        dx = _f32(x) * _nc(c2)
        if c1 is not None:
            dx = dx.add_(_nc(c1))
        return dx.addcmul_(aux, _nc(A)).to(x.dtype)
