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
  ``normdet.norm_act`` removes the activation after it and the TLU where none follows.
- Computed in float32 and cast back, so bf16/fp16 inputs stay stable; forward and backward are
  the fused passes of ``normdet.layers._affine`` (Triton kernels on CUDA).
- A non-finite input gives a non-finite output (FRN has no state to protect); training flags it
  on the layer for the once-per-iteration check (``normdet.layers.nonfinite_layers``).
"""
import torch
from torch import nn

from ._affine import stat_affine
from ._checks import check_input, flag_nonfinite

LEARNABLE_EPS = (False, True, 'auto')


class FRN(nn.Module):
    _abbr_ = 'frn'

    def __init__(self, num_features: int, eps: float = 1e-6, tlu: bool = True,
                 learnable_eps=False):
        super().__init__()
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
        self._nonfinite = None
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
        on = self.learnable_eps is True or hw == 1
        return self.eps + self.eps_l.abs() * (1.0 if on else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        eps = self.effective_eps(x.shape[2] * x.shape[3])
        params = [p for p in (self.weight, self.bias, self.eps_l) if p is not None]

        def coeffs(nu2):
            if self.training:
                flag_nonfinite(self, nu2)
            a = self.weight.to(nu2.dtype) * torch.rsqrt(nu2 + eps)
            return a, self.bias.to(nu2.dtype).unsqueeze(0)

        return stat_affine(x, 'nu2', coeffs, params, self.tau)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, tlu={self.tau is not None}, '
                f'learnable_eps={self.learnable_eps}')
