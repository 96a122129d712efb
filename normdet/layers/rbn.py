"""Revisited Batch Normalization (Davis & Frank; code osu-cvl/revisiting-bn).

The layer is plain BN, y = gamma (x - mu) / sqrt(sigma2 + eps) + beta, with the scale initialised
to a constant below 1 (``bn_weight``, 0.1 suggested) instead of 1. The paper's other two parts are
not layers and live elsewhere in normdet:
- optimizer rule: BN scale learning rate divided by c (100), no weight decay on norm parameters
  and biases -> ``normdet.openmmlab.engine.optim.RBNOptimWrapperConstructor``;
- online input normalisation: a BN over the 3 input channels replacing the fixed dataset mean/std,
  gamma initialised to bn_weight * 0.58, beta frozen at 0 -> ``normdet.preprocessor``.

Two deliberate differences from ``nn.BatchNorm2d`` keep the paper's init alive inside MMDetection,
whose ``init_weights`` sets norm scales to 1 (mmengine's Constant init on every ``_BatchNorm``,
mmcv's ``ConvModule.init_weights`` -> ``constant_init(norm, 1)`` on any module with a ``weight``):
RBN is not a ``_BatchNorm`` subclass, and its scale parameter is named ``scale``, not ``weight``.
bf16/fp16 inputs are normalised in float32 and cast back (as every normdet layer does).
``sync_stats=True`` reduces the batch statistics over all processes (like SyncBN, on any backend);
the default, False, keeps per-GPU statistics as the paper did.
Non-finite batch statistics leave the running statistics unchanged and flag the layer for the
training loop's once-per-iteration check (``normdet.layers.nonfinite_layers``); training makes no
host sync and no copy of the buffers.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_args, check_batch_stats, check_input, upcast
from ._dist import local_batch_norm, sync_world_size, synced_batch_norm


class RBN(nn.Module):
    _abbr_ = 'bn'

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 bn_weight: float = 0.1, sync_stats: bool = False):
        super().__init__()
        check_args('RBN', num_features, eps, momentum)
        self.num_features, self.eps, self.momentum, self.bn_weight = (
            num_features, eps, momentum, bn_weight)
        self.sync_stats = sync_stats
        self.scale = nn.Parameter(torch.full((num_features,), float(bn_weight)))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked', torch.zeros((), dtype=torch.long))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.scale, self.bn_weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x)
        processes = sync_world_size(self.sync_stats)
        check_batch_stats(self, x, processes)
        # bf16/fp16 input of a float32 layer (autocast): computed in float32, as torch's BN
        # kernels round per element; a layer converted to bf16/fp16 computes in its own dtype
        dtype = x.dtype
        x = upcast(x) if self.scale.dtype != dtype else x
        if x.dtype != self.scale.dtype:  # torch's batch_norm kernels take no other mix
            raise TypeError(f'RBN holds {self.scale.dtype} parameters but got a {dtype} input; '
                            f'convert the layer (rbn.to({dtype}), e.g. model.double()) or the '
                            f'input (x.to({self.scale.dtype}))')
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.scale, self.bias,
                                False, 0.0, self.eps).to(dtype)
        if processes > 1:
            return synced_batch_norm(self, x, self.scale, self.bias, self.momentum).to(dtype)
        return local_batch_norm(self, x, self.scale, self.bias, self.momentum).to(dtype)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'bn_weight={self.bn_weight}, sync_stats={self.sync_stats}')
