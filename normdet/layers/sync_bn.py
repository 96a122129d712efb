"""SyncBN that also runs on CPU processes (gloo), for the SyncBN configs on machines without GPUs.

torch's ``nn.SyncBatchNorm`` reduces the batch statistics over all processes, but only for CUDA
inputs: on CPU inside a process group it raises ``SyncBatchNorm expected input tensor to be on
GPU``. This subclass keeps torch's CUDA path as it is and, for other devices, reduces mean and
variance with differentiable all-reduces (``normdet.layers._dist``) instead: the same statistics,
gradients and running-buffer updates as one process with the whole batch. Being a
``nn.SyncBatchNorm``, it is initialised, converted and checkpointed exactly like torch's;
``import normdet`` registers it as mmcv's ``SyncBN``.
"""
import torch
from torch import nn

from ._dist import batch_mean_var, sync_world_size, update_running_stats


class SyncBatchNorm(nn.SyncBatchNorm):

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.is_cuda or not self.training or not self.track_running_stats
                or sync_world_size(True) == 1):
            return super().forward(x)
        if x.dim() != 4:
            raise ValueError(f'SyncBatchNorm on CPU expects (N, C, H, W), got {tuple(x.shape)}')
        mean, var, n = batch_mean_var(x, sync_stats=True)
        if self.momentum is None:  # cumulative moving average, as torch does
            self.momentum_for_update = 1.0 / float(self.num_batches_tracked + 1)
        momentum = self.momentum if self.momentum is not None else self.momentum_for_update
        saved, self.momentum = self.momentum, momentum
        update_running_stats(self, mean, var, n)
        self.momentum = saved
        shape = (1, -1, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y
