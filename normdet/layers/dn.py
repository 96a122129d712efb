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
- Gradients flow through the statistics into the SC module (as in SE blocks); nothing is detached.
- Eval: DN-B still computes its per-sample statistics (no batch dependence); DN-C feeds its SC
  module the running statistics, so eval output does not depend on the rest of the batch.
- Running statistics follow torch BN: momentum 0.1 weighs the NEW value, running_var is updated
  with the unbiased batch variance.
- ``sync_stats=True`` reduces the BATCH statistics (mu, sigma2: the normalisation, and DN-C's SC
  input) over all processes, like SyncBN; DN-B's SC input stays per sample (it has no batch
  dependence to share). Default False: per-GPU statistics, as the paper trained.
Statistics and the SC module run in float32 (autocast disabled for the SC module: it is tiny and its
weight gradients lose too much in bf16); the output is cast back to the input dtype.
"""
import torch
from torch import nn

from ._checks import check_batch_stats, check_finite, check_input, upcast
from ._dist import batch_mean_var, sync_world_size, update_running_stats


class _DynamicNorm(nn.Module):
    per_sample: bool  # DN-B: SC input per sample; DN-C: batch statistics

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 reduction: int = 16, min_hidden: int = 8, sync_stats: bool = False):
        super().__init__()
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
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.sc[-1].weight)  # starts as exact BN
        nn.init.zeros_(self.sc[-1].bias)

    def _batch_stats(self, x32: torch.Tensor):
        if not self.training:
            return self.running_mean, self.running_var
        mean, var, n = batch_mean_var(x32, self.sync_stats)
        check_finite(self, mean, var)
        update_running_stats(self, mean, var, n, self.momentum)
        return mean, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        check_batch_stats(self, x, sync_world_size(self.sync_stats))
        x32 = upcast(x)
        mean, var = self._batch_stats(x32)
        std = torch.sqrt(var + self.eps)
        shape = (1, -1, 1, 1)
        x_hat = (x32 - mean.view(shape)) / std.view(shape)
        if self.per_sample:
            s_var, s_mean = torch.var_mean(x32, dim=(2, 3), unbiased=False)
            s = torch.cat([s_mean, torch.sqrt(s_var + self.eps)], dim=1)  # (N, 2C)
        else:
            s = torch.cat([mean, std]).unsqueeze(0)  # (1, 2C)
        with torch.autocast(x.device.type, enabled=False):  # tiny MLP: keep it in full precision
            dgamma, dbeta = self.sc(s.to(self.sc[0].weight.dtype)).to(x32.dtype).chunk(2, dim=1)
        gamma = (self.weight + dgamma)[:, :, None, None]
        beta = (self.bias + dbeta)[:, :, None, None]
        return (gamma * x_hat + beta).to(x.dtype)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'sync_stats={self.sync_stats}')


class DNB(_DynamicNorm):
    """DN-B: per-sample, per-channel scale and shift from each sample's statistics."""
    _abbr_ = 'dnb'
    per_sample = True


class DNC(_DynamicNorm):
    """DN-C: batch-shared, per-channel scale and shift from the batch statistics."""
    _abbr_ = 'dnc'
    per_sample = False
