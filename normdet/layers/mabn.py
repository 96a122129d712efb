"""Moving Average Batch Normalization (Yan et al., ICLR 2020) and weight-centralised convolution.

MABN normalises by the second moment only (no mean subtraction) and replaces BN's batch
statistics, in the forward AND the backward pass, by simple moving averages (SMAS) over the last
``buffer_size`` training iterations. At iteration t (1-based, counted by the ``iters`` buffer):

  forward   x2_t   = mean_{n,h,w} x^2                       -> written into ring buffer B_x2
            var    = x2_t                 if t <= buffer_size or t < warmup_iters
                     mean(B_x2)           otherwise
            z      = x / sqrt(var + eps)
            r      = sqrt(var + eps) / sqrt(running_var + eps), detached,
                     clamped to exactly 1 while t <= max(renorm_iters, warmup_iters), to
                     [1/r_max, r_max] afterwards
            y      = gamma * (r z) + beta
            running_var <- momentum * running_var + (1 - momentum) * var   (momentum = weight
                                                                              of the OLD value)
  backward  g      = dy * gamma * r
            gz_t   = mean_{n,h,w} g * z                      -> written into ring buffer B_gz
            mean_gz = gz_t (same warm-up rule) or mean(B_gz)
            dx     = (g - z * mean_gz) / sqrt(var + eps)
            dgamma = sum dy * r z,  dbeta = sum dy
  eval      y = gamma * x / sqrt(running_var + eps) + beta      (foldable into the conv)

During warm-up (var = x2_t, r = 1) the backward is the exact gradient of the forward. The
convolution before MABN should be :class:`CenConv2d` (the paper's weight centralisation) so that
activations stay near zero mean, which the missing mean subtraction relies on.

Defaults are the paper's for detection: eps 1e-5, momentum 0.98, warmup_iters 100, buffer_size 16
(= target batch 32 / 2 images per GPU), renorm_iters 1000, r_max 5. The ring buffers and the
iteration counter are buffers, so they are saved in ``state_dict`` and restored on resume.
Interpretation: the official code hard-codes the 1000-iteration renorm delay; here it is the
``renorm_iters`` argument with that default. Statistics are kept in float32 whatever the input
dtype. If a training forward is not followed by a backward, B_gz simply keeps its older entries.

``sync_stats=True`` reduces both moving-average inputs over all processes: x2_t in the forward and
gz_t in the backward (so every process holds the same ring buffers and running_var); the default,
False, keeps them per GPU as the paper did (its point is that moving averages over iterations make
cross-GPU reduction unnecessary).
"""
import torch
from torch import nn

from ._checks import check_finite, check_input, upcast
from ._dist import channel_mean_no_grad


class _MABNFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias, layer):
        t = int(layer.iters) + 1
        slot = (t - 1) % layer.buffer_size
        warm = t <= layer.buffer_size or t < layer.warmup_iters
        x32 = upcast(x)
        x2 = channel_mean_no_grad(x32.square(), layer.sync_stats)
        check_finite(layer, x2)  # before any state changes
        layer.iters.fill_(t)
        layer.x2_buffer[slot] = x2
        var = x2 if warm else layer.x2_buffer.mean(dim=0)
        std = torch.sqrt(var + layer.eps)
        if t <= max(layer.renorm_iters, layer.warmup_iters):
            r = torch.ones_like(std)
        else:
            r = (std / torch.sqrt(layer.running_var + layer.eps)).clamp(1 / layer.r_max, layer.r_max)
        layer.running_var.mul_(layer.momentum).add_((1 - layer.momentum) * var)
        shape = (1, -1, 1, 1)
        z = x32 / std.view(shape)
        rz = z * r.view(shape)
        y = rz * weight.to(x32.dtype).view(shape) + bias.to(x32.dtype).view(shape)
        ctx.save_for_backward(z, std, r, weight)
        ctx.layer, ctx.slot, ctx.warm, ctx.dtypes = layer, slot, warm, (x.dtype, weight.dtype)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        z, std, r, weight = ctx.saved_tensors
        layer, shape = ctx.layer, (1, -1, 1, 1)
        dy32 = upcast(dy)
        g = dy32 * (weight.to(z.dtype) * r).view(shape)
        gz = channel_mean_no_grad(g * z, layer.sync_stats)
        layer.gz_buffer[ctx.slot] = gz
        mean_gz = gz if ctx.warm else layer.gz_buffer.mean(dim=0)
        dx = (g - z * mean_gz.view(shape)) / std.view(shape)
        dweight = (dy32 * z).sum(dim=(0, 2, 3)) * r
        dbias = dy32.sum(dim=(0, 2, 3))
        x_dtype, w_dtype = ctx.dtypes
        return dx.to(x_dtype), dweight.to(w_dtype), dbias.to(w_dtype), None


class MABN(nn.Module):
    """Moving Average Batch Normalization; equations in the module docstring."""
    _abbr_ = 'mabn'

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.98,
                 warmup_iters: int = 100, buffer_size: int = 16, renorm_iters: int = 1000,
                 r_max: float = 5.0, sync_stats: bool = False):
        super().__init__()
        if buffer_size < 1:
            raise ValueError(f'MABN buffer_size must be >= 1, got {buffer_size}; use target batch '
                             '/ per-GPU batch (32 / 2 = 16 in the paper)')
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.warmup_iters, self.buffer_size = warmup_iters, buffer_size
        self.renorm_iters, self.r_max = renorm_iters, r_max
        self.sync_stats = sync_stats
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('x2_buffer', torch.zeros(buffer_size, num_features))
        self.register_buffer('gz_buffer', torch.zeros(buffer_size, num_features))
        self.register_buffer('iters', torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        if not self.training:
            scale = self.weight * torch.rsqrt(self.running_var + self.eps)
            y = upcast(x) * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
            return y.to(x.dtype)
        return _MABNFunction.apply(x, self.weight, self.bias, self)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'warmup_iters={self.warmup_iters}, buffer_size={self.buffer_size}, '
                f'renorm_iters={self.renorm_iters}, r_max={self.r_max}, '
                f'sync_stats={self.sync_stats}')


class CenConv2d(nn.Conv2d):
    """Weight-centralised convolution (MABN paper): each output channel's filter has its mean over
    (in_channels, kh, kw) subtracted before the convolution, W <- W - mean(W). The stored weight is
    left as is; the centring is part of the forward (and so of the gradient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, self.bias)
