"""Filter Response Normalization with Thresholded Linear Unit (Singh & Krishnan, CVPR 2020).

    nu2[n, c] = mean_{h, w} x[n, c, h, w]^2           (no mean subtraction, no batch dependence)
    x_hat     = x * rsqrt(nu2 + eps)
    y         = gamma * x_hat + beta
    z         = max(y, tau)                            (TLU; tlu=False returns y)

gamma = 1, beta = 0, tau = 0 at init, all per channel and learned. Identical in train and eval.

Choices the paper leaves open, made here:
- eps = 1e-6 by default (the paper's; timm uses 1e-5). A learnable eps is the paper's remedy for
  1x1 (or very small) maps, where x_hat collapses to sign(x) and the gradient vanishes: the layer
  then uses eps + |eps_l|, eps_l a learned per-layer scalar initialised to 1e-4 (the form of the
  paper's reference code). ``learnable_eps=True`` uses it on every input; ``'auto'`` (normdet's
  configs) on inputs whose H x W is 1 and the fixed eps elsewhere, so one layer follows the map
  size it sees (eps_l then gets a zero gradient on larger maps, and stays in the graph, as
  DistributedDataParallel wants).
- ``tlu=False`` gives FRN without TLU, for norms followed by no activation (the last norm of a
  residual branch, heads that end linearly). FRN+TLU replaces a BN+activation pair:
  ``normdet.openmmlab.models.norm_act`` removes the activation after it and the TLU where none follows.
- Computed in float32 and cast back, so bf16/fp16 inputs stay stable; forward and backward are
  the fused passes of ``normdet.layers._affine`` (Triton kernels on CUDA).
- A non-finite input gives a non-finite output (FRN has no state to protect); training flags it
  on the layer for the once-per-iteration check (``normdet.layers.nonfinite_layers``).
"""
import torch
from torch import nn

from ._affine import as_dtype, backend, compute_dtype, exporting
from ._checks import check_args, check_input, flag_nonfinite, upcast

LEARNABLE_EPS = (False, True, 'auto')


class _FRNFunction(torch.autograd.Function):
    """z = max(A x + B, tau), A = gamma rsqrt(nu2 + eps), B = beta, with nu2 = mean_hw x^2 and
    eps = eps0 + on |eps_l|; the backward by hand (two passes over the activation, the rest on
    N x C values):  dA = sum_hw g x,  g_nu2 = -dA A rsqrt^2 / 2,  dx = A g + (2 g_nu2 / HW) x,
    dgamma = sum_n dA rsqrt,  dbeta = sum_n dB,  d eps_l = on sign(eps_l) sum g_nu2."""

    @staticmethod
    def forward(ctx, x, weight, bias, tau, eps_l, eps0, on, layer):
        ops = backend(x)
        dtype = compute_dtype(x)
        nu2 = ops.stats(x, 'nu2')[0]
        if layer.training:
            flag_nonfinite(layer, nu2)
        # (no autograd inside a Function's forward: no detach needed)
        eps = eps0 + (as_dtype(eps_l, dtype).abs() * on if eps_l is not None else 0.0)
        rs = torch.rsqrt(nu2 + eps)
        a = as_dtype(weight, dtype) * rs
        b = as_dtype(bias, dtype).expand_as(a)
        t = None if tau is None else as_dtype(tau, dtype)
        z = ops.affine(x, a, b, t)
        ctx.save_for_backward(x, weight, rs, eps_l, a)  # not z: an inplace op may change it
        ctx.ops, ctx.on, ctx.b, ctx.tau = ops, on, b, t
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gz):
        x, weight, rs, eps_l, a = ctx.saved_tensors
        ops, hw = ctx.ops, x.shape[2] * x.shape[3]
        dA, dB, dtau, aux = ops.grad_sums(gz, x, a, ctx.b, ctx.tau)
        c2 = torch.mul(dA, a).mul_(rs.square()).mul_(-1 / hw)  # 2 g_nu2 / HW (A = gamma rs)
        dx = ops.input_grad(gz, x, a, ctx.b, ctx.tau, None, c2, aux)
        wd = weight.dtype
        dweight = as_dtype(torch.linalg.vecdot(dA, rs, dim=0), wd)
        dbias = as_dtype(dB.sum(0), wd)
        d_eps = None
        if eps_l is not None:  # sum g_nu2 = sum c2 HW / 2
            d_eps = as_dtype(c2.sum() * (hw / 2 * ctx.on) * torch.sign(as_dtype(eps_l, rs.dtype)),
                             eps_l.dtype)
        return (dx, dweight, dbias, None if dtau is None else as_dtype(dtau, wd), d_eps,
                None, None, None)


class FRN(nn.Module):
    _abbr_ = 'frn'

    def __init__(self, num_features: int, eps: float = 1e-6, tlu: bool = True,
                 learnable_eps=False):
        super().__init__()
        check_args('FRN', num_features, eps)
        if learnable_eps not in LEARNABLE_EPS:
            raise ValueError(f'FRN learnable_eps must be one of {LEARNABLE_EPS}, got '
                             f'{learnable_eps!r}')
        self.num_features = num_features
        self.eps = eps
        self.learnable_eps = learnable_eps
        self.weight = nn.Parameter(torch.empty(num_features))
        self.bias = nn.Parameter(torch.empty(num_features))
        self.tau = nn.Parameter(torch.empty(num_features)) if tlu else None
        self.eps_l = nn.Parameter(torch.empty(1)) if learnable_eps else None
        self._finite = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        if self.tau is not None:
            nn.init.zeros_(self.tau)
        if self.eps_l is not None:
            nn.init.constant_(self.eps_l, 1e-4)

    def effective_eps(self, hw: int):
        """eps, or eps + |eps_l| where the learnable eps applies to an H x W of ``hw``."""
        if self.eps_l is None:
            return self.eps
        return self.eps + self.eps_l.abs() * self._eps_on(hw)

    def _eps_on(self, hw: int) -> float:
        return 1.0 if self.learnable_eps is True or hw == 1 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        on = self._eps_on(x.shape[2] * x.shape[3])
        if exporting():
            return self._plain(x, on)
        return _FRNFunction.apply(x, self.weight, self.bias, self.tau, self.eps_l, self.eps, on,
                                  self)

    def _plain(self, x: torch.Tensor, on: float) -> torch.Tensor:
        """The layer in plain PyTorch ops (the module docstring's formula), for exporters; the
        Function computes the same in two fused passes."""
        x32 = upcast(x)
        eps = self.eps + (self.eps_l.abs() * on if self.eps_l is not None else 0.0)
        nu2 = x32.square().mean(dim=(2, 3), keepdim=True)
        y = x32 * torch.rsqrt(nu2 + eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(
            1, -1, 1, 1)
        if self.tau is not None:
            y = torch.maximum(y, self.tau.view(1, -1, 1, 1))
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, tlu={self.tau is not None}, '
                f'learnable_eps={self.learnable_eps}')
