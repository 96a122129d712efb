"""Dynamic Normalization, DN-B and DN-C (Liu, Gao & Lv, 2021; no public code).

Both normalise exactly as BN and let a small "SC module" generate the scale and shift from data
statistics:

    x_hat            = (x - mu) / sqrt(sigma2 + eps)     batch mu, sigma2 over (N, H, W) in
                                                          training, running stats in eval
    (dgamma, dbeta)  = FC2(ReLU(FC1(s)))                  FC1: 2C -> max(C // reduction, 8),
                                                          FC2: -> 2C, zero-initialised
    y                = (gamma + dgamma) * x_hat + (beta + dbeta)

DN-B (batch- and channel-wise): s[n] = [mean_{h,w} x[n], std_{h,w} x[n]] per sample, so every
sample gets its own (gamma, beta). DN-C (batch-shared, channel-wise): s = [mu, sqrt(sigma2+eps)],
the batch statistics, one (gamma, beta) per channel shared by the batch.

Choices the paper's abstract leaves open, made here:
- The SC module is SE-like as above (reduction 16, at least 8 hidden units); its last FC is
  zero-initialised so the layer starts as exact BN. Its extra cost is near the paper's +0.6 %
  Mult-Adds.
- The per-sample std is sqrt(var_{h,w} + eps) (biased var), so 1x1 maps give a finite input.
- DN-C's SC input is one quantity in train and eval: the channel's std as the running statistics
  estimate it, sqrt(unbiased batch variance + eps) in training and sqrt(running_var + eps) in
  eval (with the batch mean and running_mean). In eval DN-C is therefore a fixed per-channel
  affine, which folds into the conv before it like BN (``eval_affine``).
- Gradients flow through the statistics into the SC module (as in SE blocks); nothing is detached.
- Eval: DN-B still computes its per-sample statistics (no batch dependence); DN-C feeds its SC
  module the running statistics, so eval output does not depend on the rest of the batch.
- Running statistics follow torch BN: momentum 0.1 weighs the NEW value, running_var is updated
  with the unbiased batch variance. Non-finite statistics leave them unchanged and flag the layer
  (``normdet.layers.nonfinite_layers``); nothing synchronises with the host.
- ``sync_stats=True`` reduces the BATCH statistics (mu, sigma2: the normalisation, and DN-C's SC
  input) over all processes, like SyncBN; DN-B's SC input stays per sample (it has no batch
  dependence to share). Default False: per-GPU statistics, as the paper trained.
Statistics and the SC module run in float32 (autocast off: the SC module is tiny and its weight
gradients lose too much in bf16); the output is cast back to the input dtype. Training and DN-B's
eval are one fused pass pair (``normdet.layers._affine``: y = A x + B with A, B from the
statistics; Triton kernels on CUDA).
"""
import torch
from torch import nn

from ._affine import stat_affine
from ._checks import check_batch_stats, check_input, flag_nonfinite, upcast
from ._dist import batch_moments, sync_world_size, update_running_stats


SC_INPUTS = ('raw', 'normalized')


class _DynamicNorm(nn.Module):
    per_sample: bool  # DN-B: SC input per sample; DN-C: batch statistics

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 reduction: int = 16, min_hidden: int = 8, sync_stats: bool = False,
                 sc_input: str = 'raw'):
        super().__init__()
        if sc_input not in SC_INPUTS:
            raise ValueError(f'sc_input must be one of {SC_INPUTS}, got {sc_input!r}')
        self.sc_input_kind = sc_input
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.sync_stats = sync_stats
        hidden = max(num_features // reduction, min_hidden)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.sc = nn.Sequential(nn.Linear(2 * num_features, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, 2 * num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked', torch.zeros((), dtype=torch.long))
        self._nonfinite = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.sc[-1].weight)  # starts as exact BN
        nn.init.zeros_(self.sc[-1].bias)

    def sc_input(self, m, v, mu, var, n=None):
        """The SC module's input from the per-sample moments (m, v) and the normalisation's
        (mu, var) (batch or running); ``n`` is the batch's element count in training (DN-C's std
        is then the unbiased estimate, the quantity running_var tracks), None in eval.

        ``sc_input='raw'``: DN-B per-sample [mean, std] (N, 2C), DN-C the batch's [mean, std]
        (1, 2C), as the paper's abstract describes them. ``'normalized'``: the same statistics
        made invariant to the scale (and DN-B to the shift) of the layer's input, as BN's output
        is: DN-B the per-sample [mean, std] of x_hat, [(m - mu) / sigma, std / sigma]; DN-C
        [mu / sigma, log sigma - mean over channels of log sigma]."""
        if self.per_sample:
            s_std = torch.sqrt(v + self.eps)
            if self.sc_input_kind == 'raw':
                return torch.cat([m, s_std], dim=1)
            inv = torch.rsqrt(var + self.eps)
            return torch.cat([(m - mu) * inv, s_std * inv], dim=1)
        if n is not None:
            var = var * n / (n - 1).clamp(min=1)
        std = torch.sqrt(var + self.eps)
        if self.sc_input_kind == 'raw':
            return torch.cat([mu, std]).unsqueeze(0)
        log_std = torch.log(std)
        return torch.cat([mu / std, log_std - log_std.mean()]).unsqueeze(0)

    def coefficients(self, mu, var, s):
        """(A, B) of y = A x + B: BN with the running or batch (mu, var) and the SC module's
        (dgamma, dbeta) on ``s``, all float32."""
        dtype = mu.dtype
        dgamma, dbeta = self.sc(s.to(self.sc[0].weight.dtype)).to(dtype).chunk(2, dim=1)
        a = (self.weight.to(dtype) + dgamma) * torch.rsqrt(var + self.eps)
        return a, self.bias.to(dtype) + dbeta - a * mu

    def eval_affine(self):
        """DN-C in eval: the per-channel (s, t) with y = s x + t (for folding)."""
        if self.per_sample:
            raise TypeError('DN-B has no eval-time affine: its scale depends on each sample')
        dtype = torch.promote_types(self.running_mean.dtype, torch.float32)
        mu, var = self.running_mean.to(dtype), self.running_var.to(dtype)
        a, b = self.coefficients(mu, var, self.sc_input(None, None, mu, var))
        return a[0], b[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        check_batch_stats(self, x, sync_world_size(self.sync_stats))
        if not self.training and not self.per_sample:  # DN-C in eval: a fixed affine
            a, b = self.eval_affine()
            return torch.addcmul(b.view(1, -1, 1, 1), upcast(x), a.view(1, -1, 1, 1)).to(x.dtype)
        hw = x.shape[2] * x.shape[3]

        def coeffs(m, v):
            if self.training:
                mu, var, n = batch_moments(m, v, hw, self.sync_stats)
                update_running_stats(self, mu, var, n, self.momentum,
                                     flag_nonfinite(self, mu, var))
            else:
                mu, var, n = self.running_mean.to(m.dtype), self.running_var.to(m.dtype), None
            return self.coefficients(mu, var, self.sc_input(m, v, mu, var, n))

        return stat_affine(x, 'moments', coeffs, [self.weight, self.bias,
                                                  *self.sc.parameters()])

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'sync_stats={self.sync_stats}, sc_input={self.sc_input_kind!r}')


class DNB(_DynamicNorm):
    """DN-B: per-sample, per-channel scale and shift from each sample's statistics."""
    _abbr_ = 'dnb'
    per_sample = True


class DNC(_DynamicNorm):
    """DN-C: batch-shared, per-channel scale and shift from the batch statistics."""
    _abbr_ = 'dnc'
    per_sample = False
