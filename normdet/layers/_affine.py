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

Exporters (``torch.export``, which ``torch.onnx.export`` runs, and the TorchScript tracer of the
legacy ONNX exporter) get the layers' formulas in plain PyTorch ops instead (``exporting()``): on
CUDA the Functions run the Triton kernels, which need real GPU memory, not the exporter's fake
tensors, and a graph of plain ops holds nothing of autograd or of normdet (traced through on the
CPU, the Functions export to the same numbers too).
"""
import functools
import os

import torch

from ._checks import upcast


@functools.cache
def _triton_ops():
    try:
        from . import _triton
    except ImportError:  # no triton in this environment: the PyTorch path serves every device
        return None
    return _triton


KERNELS = ('auto', 'torch', 'triton')


def exporting() -> bool:
    """Whether the forward is being traced for export (``torch.export``, and so
    ``torch.onnx.export``; ``torch.jit.trace``, the legacy ONNX exporter's): the layers then run
    their plain-PyTorch formula, not their autograd Functions and kernels."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def backend(x: torch.Tensor):
    """The primitive implementation for ``x``: the Triton kernels on CUDA (or when forced), the
    PyTorch ops otherwise."""
    choice = os.environ.get('NORMDET_KERNELS', 'auto')
    if choice not in KERNELS:
        raise ValueError(f'NORMDET_KERNELS={choice!r} is not one of {", ".join(KERNELS)}; unset it '
                         'for the default (Triton kernels on CUDA, PyTorch ops on the CPU)')
    if choice == 'torch' or x.dtype == torch.float64:
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


def as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype`` (``t`` itself when it is already: a call of ``.to`` costs as much as a
    small op, and the layers make a dozen of them per step)."""
    return t if t.dtype == dtype else t.to(dtype)


def _nc(t: torch.Tensor) -> torch.Tensor:
    return t.view(t.shape[0], t.shape[1], 1, 1)


def _sumsq(x32: torch.Tensor) -> torch.Tensor:
    """Per-(n, c) sum of squares over (H, W), one pass in either memory layout."""
    if x32.is_contiguous():
        return torch.linalg.vector_norm(x32, dim=(2, 3)).square_()
    return torch.linalg.vecdot(x32.flatten(2), x32.flatten(2))  # channels_last: no copy


class TorchOps:
    """The activation passes in PyTorch ops (CPU, and the reference for the kernels). Every
    backend has these four functions; A, B are (N, C) in the compute dtype, tau (C,) or None
    (without tau the backward passes read no B: it may be None there).
    Written to allocate only their outputs where they can (large temporaries cost page faults
    on the CPU) and to avoid the slow broadcasting kernels (out-of-place addcmul, where)."""

    @staticmethod
    def stats(x: torch.Tensor, kind: str):
        """'nu2': (mean x^2,); 'moments': (mean, biased variance), per (n, c) over (H, W)."""
        hw = x.shape[2] * x.shape[3]
        x32 = upcast(x)
        xv = _nhwc(x32)
        if xv is not None:  # channels_last on the CPU: (N, HW, C), reductions over HW
            if kind == 'nu2':
                return ((xv * xv).sum(1) / hw,)
            m = xv.sum(1) / hw
            d = xv - m.unsqueeze(1)
            return m, d.mul_(d).sum(1) / hw
        if kind == 'nu2':
            return (_sumsq(x32).div_(hw),)
        m = x32.sum(dim=(2, 3)).div_(hw)
        # two passes: sum (x - m)^2 does not cancel as E[x^2] - m^2 does in float32
        return m, _sumsq(x32 - _nc(m)).div_(hw)

    @staticmethod
    def affine(x, A, B, tau):
        """A x + B, then max(., tau) when tau is given, in x's dtype."""
        xv = _nhwc(x)
        if xv is not None:  # into a channels_last tensor of its own (the output is no view)
            y = torch.empty_like(x, dtype=compute_dtype(x))
            yv = torch.addcmul(B.unsqueeze(1), upcast(xv), A.unsqueeze(1), out=_nhwc(y))
            if tau is not None:
                yv.clamp_(min=tau)
            return y.to(x.dtype)
        y = (upcast(x) * _nc(A)).add_(_nc(B))
        if tau is not None:
            y = y.clamp_(min=tau.view(1, -1, 1, 1))
        return y.to(x.dtype)

    @staticmethod
    def grad_sums(gz, x, A, B, tau):
        """(dA, dB, dtau, aux): per-(n, c) sums over (H, W) of g x and g, where g is gz masked by
        TLU (where y > tau), tau's gradient (None without TLU), and what input_grad reuses."""
        g, x32 = upcast(gz), upcast(x)
        planes = _planes(x32, g)
        if planes is not None:
            return _grad_sums_planes(g, x32, A, B, tau, planes)
        xv, gv = _nhwc(x32), _nhwc(g)
        if xv is not None and gv is not None:
            return _grad_sums_nhwc(gv, xv, A, B, tau)
        full = None
        if tau is not None:
            full = g.sum(dim=(0, 2, 3))
            g = _tlu_mask(g, TorchOps.affine(x32, A, B, None).sub_(_nc(tau[None])))
        dA = torch.linalg.vecdot(g.flatten(2), x32.flatten(2))
        dB = g.sum(dim=(2, 3))
        return dA, dB, _dtau(full, dB), (g, False, None)

    @staticmethod
    def input_grad(gz, x, A, B, tau, c1, c2, aux):
        """A g + c1 + c2 x (c1 None: 0), in x's dtype; ``aux`` is grad_sums' masked g, whether
        it is a buffer of grad_sums' own, and the layout it worked in (NCHW: its planes;
        channels_last: ('nhwc', x as (N, HW, C)); else None), consumed: its buffer may become
        dx."""
        g, own, planes = aux
        x32 = upcast(x)
        if planes is not None and isinstance(planes[0], str):  # ('nhwc', x as (N, HW, C))
            xv, a, c2 = planes[1], A.unsqueeze(1), c2.unsqueeze(1)
            if own:  # g's buffer becomes dx
                dx = g.mul_(a).addcmul_(xv, c2)
            else:
                dx = torch.mul(xv, c2).addcmul_(g, a)
            if c1 is not None:
                dx = dx.add_(c1.unsqueeze(1))
            return _from_nhwc(dx.to(x.dtype), x.shape)
        if planes is not None:  # NCHW: as 1 x NC planes, BatchNorm's fused per-plane kernels
            xv, zero, one = planes
            if own:  # g's buffer becomes dx: no new tensor
                dx = g.view_as(xv).mul_(A.reshape(1, -1, 1, 1)).addcmul_(
                    xv, c2.reshape(1, -1, 1, 1))
                if c1 is not None:
                    dx = dx.add_(c1.reshape(1, -1, 1, 1))
            else:
                dx = _plane_affine(xv, c2, c1 if c1 is not None else zero, zero, one).addcmul_(
                    g.view_as(xv), A.reshape(1, -1, 1, 1))
            return dx.view_as(x).to(x.dtype)
        dx = x32 * _nc(c2)
        if c1 is not None:
            dx = dx.add_(_nc(c1))
        return dx.addcmul_(g, _nc(A)).to(x.dtype)


def _nhwc(t):
    """``t`` (N, C, H, W) in channels_last memory on the CPU as its (N, HW, C) view (the per-(n, c)
    passes are then reductions over its middle dimension, which the CPU vectorises along C, and
    broadcasts of (N, 1, C) values); None otherwise (NCHW-contiguous inputs take _planes)."""
    if t.is_cuda or t.is_contiguous() or not t.is_contiguous(memory_format=torch.channels_last):
        return None
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).view(n, h * w, c)


def _from_nhwc(v, shape):
    """The (N, C, H, W) channels_last tensor of an (N, HW, C) one."""
    n, c, h, w = shape
    return v.view(n, h, w, c).permute(0, 3, 1, 2)


def _tlu_mask(g, y_tau):
    """TLU's backward: g where y > tau, else 0, written into the buffer of ``y_tau`` = y - tau
    (a new tensor of the caller's, which may then become dx). y is recomputed from x: the output
    may have been changed in place since (an inplace activation after the layer), and a
    bf16/fp16 output rounds tau itself."""
    return torch.ops.aten.threshold_backward.grad_input(g, y_tau, 0., grad_input=y_tau)


def _dtau(full, dB):
    """d tau = (sum of g) - (sum of g where y > tau), or None without TLU."""
    return None if full is None else full - dB.sum(0)


def _grad_sums_nhwc(gv, xv, A, B, tau):
    full = None
    if tau is not None:
        full = gv.sum((0, 1))
        gv = _tlu_mask(gv, torch.addcmul((B - tau).unsqueeze(1), xv, A.unsqueeze(1)))
    dB = gv.sum(1)
    dA = (gv * xv).sum(1)
    return dA, dB, _dtau(full, dB), (gv, tau is not None, ('nhwc', xv))


def _planes(x32, g):
    """(x as 1 x NC x H x W, zeros, ones (NC,)) when x and g are contiguous NCHW float tensors on
    the CPU, whose per-(n, c) passes then run as BatchNorm's fused per-channel kernels (one pass,
    no temporary: a large temporary costs its page faults on the CPU); None otherwise."""
    if x32.is_cuda or not (x32.is_contiguous() and g.is_contiguous()):
        return None
    n, c, h, w = x32.shape
    return (x32.view(1, n * c, h, w), *_zeros_ones(n * c, x32.dtype, x32.device))


@functools.lru_cache(maxsize=256)
def _zeros_ones(size: int, dtype: torch.dtype, device: torch.device):
    """Read-only zeros and ones of ``size``, made once per size: the mean and inverse std (or
    variance) that turn BatchNorm's kernels into plain per-plane passes (two small ops fewer per
    call; only the kernels read them)."""
    with torch.inference_mode(False):  # ordinary tensors, whatever mode the first call runs in
        zero = torch.zeros(size, dtype=dtype, device=device)
        return zero, torch.ones_like(zero)


def _plane_affine(xv, a, b, zero, one):
    """a x + b per plane of xv (1, NC, H, W), a, b of N x C values: BatchNorm's inference kernel
    with mean 0, variance 1 and eps 0, one pass."""
    return torch.ops.aten._native_batch_norm_legit_no_training(
        xv, a.reshape(-1), b.reshape(-1), zero, one, 0., 0.)[0]


def _grad_sums_planes(g, x32, A, B, tau, planes):
    xv, zero, one = planes
    full, gv = None, g.view_as(xv)
    if tau is not None:
        full = g.sum(dim=(0, 2, 3))
        gv = _tlu_mask(gv, _plane_affine(xv, A, B - tau[None], zero, one))
    # BatchNorm's backward reduction with mean 0, invstd 1: sum g x and sum g per plane, fused
    _, dA, dB = torch.ops.aten.native_batch_norm_backward(
        gv, xv, one, None, None, zero, one, True, 0., [False, True, True])
    n, c = x32.shape[:2]
    dA, dB = dA.view(n, c), dB.view(n, c)
    return dA, dB, _dtau(full, dB), (gv, tau is not None, planes)
