"""One-line input checks shared by the normalization layers; each error says what was expected
and how to fix it."""
import math
import numbers

import torch


def check_args(layer: str, num_features, eps, momentum=None, **counts) -> None:
    """A layer's constructor arguments in their domains, each error naming the argument: the
    channel count and ``counts`` (reduction, buffer sizes) positive integers, eps a positive
    number (it keeps the division finite), momentum a fraction in [0, 1]."""
    def integer(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def real(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    if not integer(num_features) or num_features < 1:
        raise ValueError(f'{layer} num_features must be a positive integer (the channels of its '
                         f'input), got {num_features!r}')
    if not real(eps) or eps <= 0:
        raise ValueError(f'{layer} eps must be a positive number (added to the variance so that '
                         f'the division stays finite, e.g. 1e-5), got {eps!r}')
    if momentum is not None and (not real(momentum) or not 0 <= momentum <= 1):
        raise ValueError(f'{layer} momentum must be a fraction in [0, 1] (the weight of the new '
                         f'statistics), got {momentum!r}')
    for key, value in counts.items():
        if not integer(value) or value < 1:
            raise ValueError(f'{layer} {key} must be a positive integer, got {value!r}')


def check_input(layer, x: torch.Tensor) -> None:
    """Raise if `x` is not a non-empty floating-point (N, C, H, W) tensor with the layer's
    channel count."""
    name = type(layer).__name__
    if not torch.is_tensor(x):
        raise TypeError(f'{name} expects a torch.Tensor, got {type(x).__name__}')
    if not x.is_floating_point():
        raise TypeError(f'{name} expects a floating-point input, got {x.dtype} (shape '
                        f'{tuple(x.shape)}); convert it first, e.g. x.float() (images: '
                        'x.float() / 255)')
    if x.dim() != 4:
        raise ValueError(f'{name} expects a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}; '
                         'reshape it, or use a 1-D norm for (N, C) features')
    if x.shape[1] != layer.num_features:
        raise ValueError(f'{name} was built for {layer.num_features} channels but got an input '
                         f'with {x.shape[1]} (shape {tuple(x.shape)}); build it with '
                         f'num_features={x.shape[1]} or fix the preceding layer')
    if x.numel() == 0:
        raise ValueError(f'{name} got an empty input of shape {tuple(x.shape)}: there is nothing '
                         'to normalise; skip the layer for empty batches (N = 0) or check the '
                         'preceding layers (H or W = 0)')


def check_batch_stats(layer, x: torch.Tensor, processes: int = 1) -> None:
    """Batch statistics (over ``processes`` when synced) need more than one value per channel in
    training."""
    if layer.training and x.shape[0] * x.shape[2] * x.shape[3] * processes == 1:
        raise ValueError(f'{type(layer).__name__} needs more than one value per channel to compute '
                         f'batch statistics in training, got input shape {tuple(x.shape)} (a batch '
                         'of 1 with 1x1 spatial size); use a batch of at least 2, call .eval(), '
                         'or choose a batch-independent norm (GN, FRN)')


def finite(*stats: torch.Tensor) -> torch.Tensor:
    """A 0-dim bool tensor on the statistics' device: all of them finite (s - s is 0 for finite
    s, NaN for NaN and +-Inf, and NaN is not equal to itself: three small ops between tensors,
    where isfinite takes four and an op with a Python number costs twice one between tensors on
    the CPU). No host sync."""
    s = stats[0] if len(stats) == 1 else torch.cat([t.reshape(-1) for t in stats])
    d = s - s
    return (d == d).all()


def flag_nonfinite(layer, *stats: torch.Tensor) -> torch.Tensor:
    """Record on ``layer`` (device-side, no host sync) whether these statistics were
    non-finite; returns the 0-dim "all finite" tensor, for guarded state updates
    (``torch.where(ok, new, old)``) that leave running buffers unchanged on NaN/Inf input.
    The training loop reads the flags once per iteration (:func:`nonfinite_layers`)."""
    ok = finite(*(s.detach() if s.requires_grad else s for s in stats))
    seen = getattr(layer, '_finite', None)  # "all finite since the last check"
    # into the instance dict, as nn.Module's __setattr__ would put it, without its checks
    layer.__dict__['_finite'] = ok if seen is None else seen & ok
    return ok


NONFINITE_MESSAGE = ('got non-finite (NaN/Inf) input in training; its running statistics were '
                     'left unchanged. The model has diverged before this layer: lower the '
                     'learning rate, add warm-up or gradient clipping, or train with fp32 '
                     'instead of fp16')


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Statistics are computed in float32 for half inputs (bf16/fp16), in the input dtype otherwise."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def raise_if_nonfinite(model) -> None:
    """Raise FloatingPointError naming the layers of ``model`` that saw non-finite statistics
    (one host sync); for plain-PyTorch loops that want normdet's training check."""
    names = nonfinite_layers(model)
    if names:
        raise FloatingPointError(f'{", ".join(names[:5])}{" ..." if len(names) > 5 else ""} '
                                 + NONFINITE_MESSAGE)


def nonfinite_layers(model) -> list:
    """Names of the normdet layers in ``model`` that saw non-finite statistics in training since
    the last call, which resets them. Layers record it on the device (``_finite``, no host
    sync); this call synchronises once, so a training loop calls it once per iteration."""
    flagged = [(name, m) for name, m in model.named_modules()
               if getattr(m, '_finite', None) is not None]
    if not flagged:
        return []
    flags = [m._finite.to(flagged[0][1]._finite.device) for _, m in flagged]
    for _, m in flagged:
        m._finite = None
    if bool(torch.stack(flags).all()):  # the one host sync
        return []
    return [name or type(m).__name__ for (name, m), ok in zip(flagged, flags) if not bool(ok)]
