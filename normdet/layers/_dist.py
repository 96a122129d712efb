"""Batch statistics over every process of a distributed run, for the layers' ``sync_stats`` option.

With ``sync_stats=True`` and an initialised process group of more than one process, the per-channel
statistics over (N, H, W) are reduced over all processes, as SyncBN does: P processes with batch
B normalise exactly like one process with batch P*B. Without a process group (or with one
process) they are the local ones, so the same layer runs anywhere. The reductions are
differentiable (torch.distributed.nn's all_reduce: its backward all-reduces the gradient), so the
input gradient includes every process's dependence on the shared statistics, as SyncBN's does.
Works with any backend, gloo on CPU included.
"""
import torch
import torch.distributed as dist

from ._affine import as_dtype
from ._checks import flag_nonfinite

DIMS = (0, 2, 3)


def sync_world_size(sync_stats: bool) -> int:
    """The number of processes the statistics are reduced over (1: local statistics)."""
    if sync_stats and dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over processes."""
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(t)


def _sums_and_count(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sums over (N, H, W) followed by the element count, ready to all-reduce."""
    return torch.cat([t.sum(DIMS), t.new_full((1,), float(t.numel() // t.shape[1]))])


def batch_mean_var(x: torch.Tensor, sync_stats: bool = False):
    """Per-channel mean, biased variance and element count of ``x`` (N, C, H, W) over (N, H, W),
    over all processes when ``sync_stats`` (the count is then a tensor, else a number). Two
    passes (mean, then the squared deviations) rather than E[x^2] - E[x]^2, which cancels badly
    in float32."""
    if sync_world_size(sync_stats) == 1:
        var, mean = torch.var_mean(x, dim=DIMS, unbiased=False)
        return mean, var, float(x.numel() // x.shape[1])
    total = all_reduce_sum(_sums_and_count(x))
    n = total[-1].detach()
    mean = total[:-1] / n
    var = all_reduce_sum((x - mean.view(1, -1, 1, 1)).square().sum(DIMS)) / n
    return mean, var, n


def batch_moments(m: torch.Tensor, v: torch.Tensor, hw: int, sync_stats: bool = False):
    """Per-channel batch mean, biased variance and element count from per-(sample, channel)
    means ``m`` and biased variances ``v`` (N, C) over ``hw`` pixels each, over all processes when
    ``sync_stats`` (differentiable). The variance is combined as mean(v) + mean((m - mu)^2), which
    does not cancel as E[x^2] - mu^2 does."""
    n = m.shape[0] * hw
    if sync_world_size(sync_stats) == 1:
        mu = m.mean(0)
        d = m - mu
        return mu, torch.addcmul(v, d, d).mean(0), float(n)
    total = all_reduce_sum(torch.cat([m.sum(0) * hw, m.new_full((1,), float(n))]))
    count = total[-1].detach()
    mu = total[:-1] / count
    var = all_reduce_sum((v + (m - mu).square()).sum(0) * hw) / count
    return mu, var, count


def all_reduce_mean_no_grad(sums: torch.Tensor, count: int, sync_stats: bool = False):
    """``sums / count`` for per-channel sums over ``count`` elements, over all processes when
    ``sync_stats`` (the sums and counts of every process added); for tensors autograd does not
    track (MABN's forward and backward, which run with grad mode off and manage their gradients
    themselves)."""
    if sync_world_size(sync_stats) == 1:
        return sums / count
    local = torch.cat([sums, sums.new_full((1,), float(count))])
    dist.all_reduce(local)
    return local[:-1] / local[-1]


def batch_mean_no_grad(means: torch.Tensor, hw: int, sync_stats: bool = False):
    """The per-channel mean over the batch (all processes when ``sync_stats``) of per-sample
    means (N, C) over ``hw`` pixels each; each process weighs by its pixels (its H x W may
    differ). Grad mode off, as :func:`all_reduce_mean_no_grad`."""
    if sync_world_size(sync_stats) == 1:
        return means.mean(0)
    return all_reduce_mean_no_grad(means.sum(0) * hw, means.shape[0] * hw, True)


def unbias(n):
    """n / (n - 1), the factor from the biased to the unbiased variance, for a count that is a
    number (this process's batch: no tensor, so no host-to-device copy) or a tensor (the count
    over all processes, reduced on the device)."""
    return n / (n - 1).clamp(min=1) if torch.is_tensor(n) else n / max(n - 1, 1)


def update_running_stats(layer, mean: torch.Tensor, var: torch.Tensor, n, momentum: float,
                         ok: torch.Tensor = None) -> None:
    """torch BN's rule: momentum weighs the NEW value; running_var gets the unbiased variance.
    ``ok`` (a 0-dim bool tensor): where False, the buffers stay as they are (non-finite
    statistics), decided on the device without a host sync. Five small ops, none recorded by
    autograd (the layers' Functions call it with grad mode already off)."""
    if torch.is_grad_enabled():
        with torch.no_grad():
            return update_running_stats(layer, mean, var, n, momentum, ok)
    rm, rv = layer.running_mean, layer.running_var
    var = var * unbias(n)
    if ok is not None:
        mean, var = torch.where(ok, mean, rm), torch.where(ok, var, rv)
    torch._foreach_lerp_((rm, rv), (as_dtype(mean, rm.dtype), as_dtype(var, rv.dtype)), momentum)
    layer.num_batches_tracked.add_(1)


def synced_batch_norm(layer, x: torch.Tensor, weight, bias, momentum: float) -> torch.Tensor:
    """Training-mode BN of ``x`` with statistics over all processes (RBN with ``sync_stats``,
    SyncBatchNorm on CPU): updates ``layer``'s running statistics (unchanged, and the layer
    flagged, when they are non-finite) and returns the normalised ``x`` with the affine
    (``weight`` None: none)."""
    mean, var, n = batch_mean_var(x, sync_stats=True)
    update_running_stats(layer, mean, var, n, momentum, flag_nonfinite(layer, mean, var))
    shape = (1, -1, 1, 1)
    y = (x - mean.view(shape)) * torch.rsqrt(var + layer.eps).view(shape)
    return y if weight is None else y * weight.view(shape) + bias.view(shape)


def local_batch_norm(layer, x: torch.Tensor, weight, bias, momentum: float) -> torch.Tensor:
    """Training-mode BN of ``x`` with this process's batch statistics, by torch's own kernel
    (``native_batch_norm``, which also returns the batch mean and inverse std): the running
    statistics are updated from those, unchanged (and the layer flagged) when they are
    non-finite. No host sync, no copy of the buffers."""
    y, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, layer.eps)
    n = float(x.numel() // x.shape[1])
    with torch.no_grad():
        var = invstd.pow(-2).sub_(layer.eps)
        # the variance is finite only if every input is (a NaN or +-Inf input makes it NaN; the
        # kernel's running mean cannot overflow), and so is the mean
        update_running_stats(layer, mean, var, n, momentum, flag_nonfinite(layer, var))
    return y
