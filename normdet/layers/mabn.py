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
A forward recomputed inside the backward pass (activation checkpointing, mmdet's ``with_cp``)
reuses its iteration's statistics and advances nothing: one training step is one iteration.
Non-finite statistics (a diverged model) leave the buffers and running_var unchanged and flag the
layer for the training loop's once-per-iteration check; nothing synchronises with the host.

``moving_averages`` ('both', the paper's) can keep one of the two moving averages alone, or
neither, after warm-up: an ablation, to tell which one a run's behaviour after warm-up comes from.

``sync_stats=True`` reduces both moving-average inputs over all processes: x2_t in the forward and
gz_t in the backward (so every process holds the same ring buffers and running_var); the default,
False, keeps them per GPU as the paper did (its point is that moving averages over iterations make
cross-GPU reduction unnecessary).
"""
import torch
from torch import nn

from ..utils.errors import is_count
from ._affine import as_dtype, backend
from ._checks import check_args, check_input, flag_nonfinite, upcast
from ._dist import all_reduce_mean_no_grad, batch_mean_no_grad

DIMS = (0, 2, 3)
# moving_averages -> (forward uses the moving average of x^2, backward that of g z) after
# warm-up: the paper's 'both', or one of them alone (an ablation: which one a run's behaviour
# after warm-up comes from), or 'none' (batch statistics throughout, with r = 1 until renorm)
MOVING = {'both': (True, True), 'forward': (True, False), 'backward': (False, True),
          'none': (False, False)}


def in_backward() -> bool:
    """Whether this forward runs inside a backward pass: activation checkpointing (mmdet's
    ``with_cp=True``, either torch.utils.checkpoint variant) recomputes the forward there."""
    return torch._C._current_graph_task_id() != -1


def assign_if(ok: torch.Tensor, state: torch.Tensor, new: torch.Tensor) -> None:
    """``state[...] = new`` (cast to its dtype) where ``ok``, :func:`flag_nonfinite`'s 0-dim bool,
    is True; ``state`` unchanged otherwise. One op, in place, decided on the device."""
    torch.where(ok, as_dtype(new, state.dtype), state, out=state)


class _MABNFunction(torch.autograd.Function):
    """Training MABN; ``stats`` are this iteration's (var, std, r / std, slot, warm), computed by
    :meth:`MABN._advance`. Forward y = (gamma r / std) x + beta; backward as the module docstring,
    rewritten so that it makes one reduction pass and one dx pass over the activation:
    gz = (gamma r / std) mean(dy x),  dx = (gamma r / std) dy - (mean_gz / std^2) x,
    dgamma = (r / std) sum(dy x),  dbeta = sum(dy)."""

    @staticmethod
    def forward(ctx, x, weight, bias, layer, stats):
        var, std, rs, slot, warm = stats
        ops = backend(x)
        a = (as_dtype(weight, std.dtype) * rs).expand(x.shape[0], -1)
        b = as_dtype(bias, std.dtype).expand(x.shape[0], -1)
        ctx.save_for_backward(x, weight, std, rs, a)
        ctx.layer, ctx.slot, ctx.warm, ctx.ops = layer, slot, warm, ops
        return ops.affine(x, a, b, None)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, weight, std, rs, a = ctx.saved_tensors
        layer, ops, n = ctx.layer, ctx.ops, x.shape[0]
        sum_dyx, sum_dy, _, aux = ops.grad_sums(dy, x, a, None, None)  # no TLU: no B needed
        count = n * x.shape[2] * x.shape[3]
        s_dyx = sum_dyx.sum(0)
        # gz_t = mean_{n,h,w} g z with g = dy gamma r and z = x / std
        gz = all_reduce_mean_no_grad(s_dyx, count, layer.sync_stats) * a[0]
        ok = flag_nonfinite(layer, gz)
        assign_if(ok, layer.gz_buffer[ctx.slot], gz)  # unchanged where non-finite
        mean_gz = gz if ctx.warm else layer.gz_buffer.mean(dim=0)
        c2 = torch.div(mean_gz, std.square()).neg_().expand(n, -1)
        dx = ops.input_grad(dy, x, a, None, None, None, c2, aux)
        dweight = s_dyx * rs
        dbias = sum_dy.sum(0)
        return dx, as_dtype(dweight, weight.dtype), as_dtype(dbias, weight.dtype), None, None


class MABN(nn.Module):
    """Moving Average Batch Normalization; equations in the module docstring."""
    _abbr_ = 'mabn'

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.98,
                 warmup_iters: int = 100, buffer_size: int = 16, renorm_iters: int = 1000,
                 r_max: float = 5.0, sync_stats: bool = False, moving_averages: str = 'both'):
        super().__init__()
        if moving_averages not in MOVING:
            raise ValueError(f'MABN moving_averages must be one of {", ".join(MOVING)}, got '
                             f'{moving_averages!r}')
        check_args('MABN', num_features, eps, momentum)
        if not is_count(buffer_size):
            raise ValueError(f'MABN buffer_size must be a positive integer, got {buffer_size!r}; '
                             'use target batch / per-GPU batch (32 / 2 = 16 in the paper)')
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.warmup_iters, self.buffer_size = warmup_iters, buffer_size
        self.renorm_iters, self.r_max = renorm_iters, r_max
        self.sync_stats, self.moving_averages = sync_stats, moving_averages
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('x2_buffer', torch.zeros(buffer_size, num_features))
        self.register_buffer('gz_buffer', torch.zeros(buffer_size, num_features))
        self.register_buffer('iters', torch.zeros((), dtype=torch.long))
        self._last = None  # this iteration's statistics, for a recomputed forward
        self._finite = None
        self._host_iters = None  # the counter on the host, so training never reads the device

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._host_iters, self._last = None, None  # re-read once from the loaded buffer

    @torch.no_grad()
    def _advance(self, x: torch.Tensor):
        """Advance the moving averages by one iteration with ``x``; returns (var, std, r / std,
        slot, warm). Non-finite statistics leave every buffer unchanged (and flag the layer)."""
        if self._host_iters is None:
            self._host_iters = int(self.iters)  # once after construction or loading
        t = self._host_iters = self._host_iters + 1
        slot = (t - 1) % self.buffer_size
        warm = t <= self.buffer_size or t < self.warmup_iters
        hw = x.shape[2] * x.shape[3]
        nu2 = backend(x).stats(x, 'nu2')[0]  # (N, C) per-sample mean of x^2
        x2 = batch_mean_no_grad(nu2, hw, self.sync_stats)
        ok = flag_nonfinite(self, x2)
        assign_if(ok, self.x2_buffer[slot], x2)  # unchanged where non-finite
        moving = MOVING[self.moving_averages]
        var = x2 if warm or not moving[0] else self.x2_buffer.mean(dim=0)
        std = torch.sqrt(var + self.eps)
        rv = self.running_var
        if t <= max(self.renorm_iters, self.warmup_iters):
            rs = std.reciprocal()  # r = 1
        else:
            r = (std / torch.sqrt(rv + self.eps)).clamp_(1 / self.r_max, self.r_max)
            rs = r.div_(std)
        assign_if(ok, rv, rv.lerp(as_dtype(var, rv.dtype), 1 - self.momentum))
        self.iters.fill_(t)
        return var, std, rs, slot, warm or not moving[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        if not self.training:  # a fixed affine (foldable into the conv); differentiable
            scale = (self.weight * torch.rsqrt(self.running_var + self.eps)).view(1, -1, 1, 1)
            return torch.addcmul(self.bias.view(1, -1, 1, 1), upcast(x), scale).to(x.dtype)
        if in_backward() and self._last is not None:
            stats = self._last  # recomputed forward (activation checkpointing): same iteration
        else:
            stats = self._last = self._advance(x)
        return _MABNFunction.apply(x, self.weight, self.bias, self, stats)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'warmup_iters={self.warmup_iters}, buffer_size={self.buffer_size}, '
                f'renorm_iters={self.renorm_iters}, r_max={self.r_max}, '
                f'sync_stats={self.sync_stats}'
                + (f', moving_averages={self.moving_averages!r}'
                   if self.moving_averages != 'both' else ''))


class CenConv2d(nn.Conv2d):
    """Weight-centralised convolution (MABN paper): each output channel's filter has its mean over
    (in_channels, kh, kw) subtracted before the convolution, W <- W - mean(W). The stored weight is
    left as is; the centring is part of the forward (and so of the gradient).

    A depthwise filter (one input channel per group) centred over its kh x kw taps sums to zero: it
    passes no local average at all. The official code has no depthwise model; with
    ``centre_depthwise=False`` such convolutions stay plain (an ablation for MobileNetV2, whose
    SSDLite has 26 depthwise convs of 63); the default, True, centres every filter as the equation
    reads."""

    def __init__(self, *args, centre_depthwise: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.centre_depthwise = centre_depthwise

    @property
    def centred(self) -> bool:
        """Whether this conv centres its filters (all but depthwise ones without
        ``centre_depthwise``)."""
        depthwise = self.groups > 1 and self.groups == self.in_channels
        return self.centre_depthwise or not depthwise

    def centred_weight(self) -> torch.Tensor:
        w = self.weight
        return w - w.mean(dim=(1, 2, 3), keepdim=True) if self.centred else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.centred_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ('' if self.centre_depthwise else ', centre_depthwise=False')
