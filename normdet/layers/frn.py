"""Filter Response Normalization with Thresholded Linear Unit (Singh & Krishnan, CVPR 2020).

    nu2[n, c] = mean_{h, w} x[n, c, h, w]^2           (no mean subtraction, no batch dependence)
    x_hat     = x * rsqrt(nu2 + eps)
    y         = gamma * x_hat + beta
    z         = max(y, tau)                            (TLU; tlu=False returns y)

gamma = 1, beta = 0, tau = 0 at init, all per channel and learned. Identical in train and eval.

Choices the paper leaves open, made here:
- eps = 1e-6 by default (the paper's; timm uses 1e-5). With ``learnable_eps=True`` the layer uses
  eps + |eps_l| with eps_l a learned per-layer scalar initialised to 1e-4, the paper's remedy for
  1x1 (or very small) feature maps where x_hat collapses to sign(x). Enable it for such layers.
- ``tlu=False`` gives FRN without TLU, for norms followed by no activation (the last norm of a
  residual branch, heads that end linearly). FRN+TLU replaces a BN+activation pair, so the config
  rewrite sets ``act_cfg=None`` where it puts FRN.
- Statistics are computed in float32 and the result cast back, so bf16/fp16 inputs stay stable.
"""
import torch
from torch import nn

from ._checks import check_input, upcast


class FRN(nn.Module):
    _abbr_ = 'frn'

    def __init__(self, num_features: int, eps: float = 1e-6, tlu: bool = True,
                 learnable_eps: bool = False):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_features))
        self.bias = nn.Parameter(torch.empty(num_features))
        self.tau = nn.Parameter(torch.empty(num_features)) if tlu else None
        self.eps_l = nn.Parameter(torch.empty(1)) if learnable_eps else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        if self.tau is not None:
            nn.init.zeros_(self.tau)
        if self.eps_l is not None:
            nn.init.constant_(self.eps_l, 1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        shape = (1, -1, 1, 1)
        x32 = upcast(x)
        eps = self.eps if self.eps_l is None else self.eps + self.eps_l.abs()
        nu2 = x32.square().mean(dim=(2, 3), keepdim=True)
        y = x32 * torch.rsqrt(nu2 + eps) * self.weight.view(shape) + self.bias.view(shape)
        if self.tau is not None:
            y = torch.maximum(y, self.tau.view(shape))
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, tlu={self.tau is not None}, '
                f'learnable_eps={self.eps_l is not None}')
