"""SyncBN that also runs on CPU processes (gloo), for the SyncBN configs on machines without GPUs.

torch's ``nn.SyncBatchNorm`` reduces the batch statistics over all processes, but only for GPU
inputs: on CPU inside a process group its forward raises ``SyncBatchNorm expected input tensor to
be on GPU``, and DistributedDataParallel refuses to wrap a CPU model holding one ("SyncBatchNorm
layers only work with GPU modules"). This layer is therefore a ``_BatchNorm`` (not an
``nn.SyncBatchNorm``) that runs torch's own SyncBatchNorm forward on GPUs, unchanged, and on other
devices reduces mean and variance with differentiable all-reduces (``normdet.layers._dist``):
the same statistics, gradients and running-buffer updates as one process with the whole batch.
Same parameters, buffers and state_dict keys as torch's; ``import normdet`` registers it as
``NormDetSyncBN``. Non-finite statistics flag the layer (``normdet.layers.nonfinite_layers``); in
one process and on CPU processes they also leave the running statistics unchanged (torch's
multi-GPU kernel updates them itself: there the flag stops training before they are saved).
"""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._checks import check_batch_stats, check_input, flag_nonfinite
from ._dist import local_batch_norm, sync_world_size, synced_batch_norm


class SyncBatchNorm(_BatchNorm):

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    # torch's SyncBatchNorm.forward (used on GPUs) calls these
    _check_input_dim = nn.SyncBatchNorm._check_input_dim
    _check_non_zero_input_channels = nn.SyncBatchNorm._check_non_zero_input_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        if self.training:  # one value per channel over every process: nothing to normalise by
            check_batch_stats(self, x, sync_world_size(True) if self.process_group is None
                              else torch.distributed.get_world_size(self.process_group))
        if not (self.training and self.track_running_stats and self.process_group is None):
            return nn.SyncBatchNorm.forward(self, x)
        momentum = self.momentum
        if momentum is None:  # cumulative moving average, as torch does
            momentum = 1.0 / float(self.num_batches_tracked + 1)
        weight = self.weight if self.affine else None
        if sync_world_size(True) == 1:  # one process: BN, with guarded running statistics
            return local_batch_norm(self, x, weight, self.bias, momentum)
        if x.device.type == 'cpu':
            return synced_batch_norm(self, x, weight, self.bias, momentum)
        y = nn.SyncBatchNorm.forward(self, x)  # torch's GPU kernels, unchanged
        flag_nonfinite(self, self.running_mean, self.running_var)
        return y
