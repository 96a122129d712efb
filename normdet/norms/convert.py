"""Convert a built model's batch norms to any normdet norm, in plain PyTorch.

A model built without configs (torchvision, timm, your own) is converted after it is built, as
detectron2's ``FrozenBatchNorm2d.convert_frozen_batchnorm`` and timm's ``freeze_batch_norm_2d``
swap theirs:

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None)
    model = normdet.convert_module(model, 'FRN')

(An MMDetection config is rewritten before it is built by ``normdet.openmmlab.convert_norm``.)
"""
import warnings

import torch
from torch import nn

from .pretrained import BN_TENSORS, map_bn_tensors
from .table import BN_MOMENTUM, NormContext, get_norm


def _is_bn2d(module: nn.Module) -> bool:
    """A 2d batch norm of torch (BatchNorm2d, SyncBatchNorm, normdet's SyncBatchNorm) or a frozen
    one (torchvision's and detectron2's FrozenBatchNorm2d: weight, bias, running mean and var as
    buffers)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return not isinstance(module, (nn.BatchNorm1d, nn.BatchNorm3d))
    return type(module).__name__ == 'FrozenBatchNorm2d'


def _convert_bn(bn: nn.Module, spec, ctx: NormContext, kwargs: dict, name: str) -> nn.Module:
    if spec.batch_stats and getattr(bn, 'running_var', None) is None:
        # a BN without running statistics normalises by the batch in eval too: a norm that
        # keeps running statistics would compute something else there
        raise ValueError(f'convert_module: {type(bn).__name__} {name!r} has no running statistics '
                         f'(track_running_stats=False): its eval output depends on the batch, '
                         f'which {spec.name} (running statistics in eval) would not reproduce; '
                         'give it running statistics first, or convert to a per-sample norm '
                         '(GN, FRN)')
    args = dict(kwargs)
    if spec.bn_args:  # the BN-family norms keep this BN's eps and momentum, as convert_norm does
        momentum = getattr(bn, 'momentum', None)  # None: torch's cumulative average; frozen BN
        args.setdefault('eps', bn.eps)
        args.setdefault('momentum', BN_MOMENTUM if momentum is None else momentum)
    ref = next((t for t in (bn.running_var, bn.weight) if t is not None), None)
    channels = getattr(bn, 'num_features', None) or ref.numel()
    new = spec.build(channels, ctx, **args)
    if ref is not None:
        new = new.to(device=ref.device, dtype=ref.dtype)
    # what carries over, as a BN checkpoint loads into this norm (normdet.norms.pretrained)
    tensors = {k: getattr(bn, k, None) for k in BN_TENSORS}
    tensors, _, _ = map_bn_tensors(new, {k: v.detach() for k, v in tensors.items()
                                         if isinstance(v, torch.Tensor)})
    state = {k: v for k, v in tensors.items() if v.shape == getattr(new, k).shape}
    with torch.no_grad():
        for name, value in state.items():
            getattr(new, name).copy_(value)
    new.train(bn.training)
    return new


def convert_module(module: nn.Module, norm: str, ctx: NormContext = NormContext(),
                   **kwargs) -> nn.Module:
    """Replace every 2d batch norm of a built model (``nn.BatchNorm2d``, ``nn.SyncBatchNorm``,
    torchvision's ``FrozenBatchNorm2d``) by ``norm`` (any name of ``normdet.norms``), in place;
    returns the model (or the new layer when ``module`` itself is a BN). A model with none (built
    with another norm, or with ``BatchNorm1d``/``3d`` only) is returned unchanged, with a warning.

    Each new layer is built as the norm's configs build it (``get_norm(norm).build``; the BN-family
    norms take the replaced BN's eps and momentum; ``ctx`` and ``kwargs`` as in ``Norm.build``,
    e.g. ``ctx=NormContext(batch_per_gpu=2)`` for MABN's buffer, ``num_groups=16`` for GN) and
    keeps what carries over: the affine weight (RBN's ``scale``) and bias, and the running mean
    and variance and batch count where the new norm keeps them (BN, SyncBN, DN-B, DN-C, RBN; MABN,
    which normalises by the second moment, gets running var + mean^2). So BN-family targets
    compute in eval exactly what the BN did, and a frozen BN becomes a trainable norm. Only the
    norms are swapped: activations stay (FRN's TLU then precedes the model's ReLU), and the
    companions the configs add (MABN's weight-centralised conv, RBN's optimizer rule and input
    BN) are the caller's to add."""
    spec = get_norm(norm)
    found = [(name, m) for name, m in module.named_modules() if _is_bn2d(m)]
    if not found:
        warnings.warn(f'convert_module: {type(module).__name__} has no 2d batch norm '
                      '(BatchNorm2d, SyncBatchNorm, FrozenBatchNorm2d) to replace by '
                      f'{spec.name}; it is returned unchanged', stacklevel=2)
        return module
    for name, bn in found:  # checked whole before anything is replaced
        if spec.batch_stats and getattr(bn, 'running_var', None) is None:
            _convert_bn(bn, spec, ctx, kwargs, name)  # raises, naming it
    return _replace(module, spec, ctx, kwargs)


def _replace(module: nn.Module, spec, ctx: NormContext, kwargs: dict, name: str = ''):
    if _is_bn2d(module):
        return _convert_bn(module, spec, ctx, kwargs, name)
    for child_name, child in module.named_children():
        new = _replace(child, spec, ctx, kwargs, f'{name}.{child_name}' if name else child_name)
        if new is not child:
            setattr(module, child_name, new)
    return module
