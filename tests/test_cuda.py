"""Every layer on CUDA against the same layer in float64 on the CPU (itself checked against the
paper's equations in the per-layer tests): forward, input and parameter gradients, buffers, in
NCHW and channels_last, fp32 and under bf16 autocast. Skipped where there is no GPU."""
import copy

import pytest
import torch

from normdet.layers import MABN
from normdet.norms import NORMS

LAYERS = [n.layer for n in NORMS.values() if n.layer is not None]  # every normdet layer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def make(cls):
    kw = dict(buffer_size=3, warmup_iters=2, renorm_iters=4) if cls is MABN else {}
    layer = cls(32, **kw)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return layer


def run(layer, x, dy, amp=False):
    x = x.clone().requires_grad_()
    layer.zero_grad()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        y = layer(x)
    y.backward(dy)  # outside autocast, as PyTorch recommends
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    return [y.detach()] + [g.detach() for g in grads] + [b.detach() for b in layer.buffers()]


@pytest.mark.parametrize('cls', LAYERS)
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('amp', [False, True])
def test_cuda_matches_float64_cpu(cls, channels_last, amp):
    torch.manual_seed(0)
    ref = make(cls).double()
    dev = copy.deepcopy(ref).float().cuda()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    tol = dict(rtol=3e-2, atol=3e-2) if amp else dict(rtol=1e-4, atol=1e-4)
    for it in range(6):  # several iterations: MABN's buffers and clamp, running stats
        x = torch.randn(2, 32, 17, 23, dtype=torch.float64) * (1 + it) + 0.3
        dy = torch.randn_like(x)
        if amp:  # the reference sees the same bf16-rounded data: compare arithmetic, not rounding
            x, dy = x.bfloat16().double(), dy.bfloat16().double()
        want = run(ref, x, dy)
        xd = x.float().cuda().contiguous(memory_format=fmt)
        dyd = dy.float().cuda().contiguous(memory_format=fmt)
        if amp:
            got = run(dev, xd.bfloat16(), dyd.bfloat16(), amp=True)
        else:
            got = run(dev, xd, dyd)
        for g, w in zip(got, want):
            assert torch.isfinite(g.float()).all()
            torch.testing.assert_close(g.double().cpu(), w.double(), **tol)
    ref.eval(), dev.eval()
    x = torch.randn(1, 32, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(dev(x.float().cuda()).double().cpu(), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cls', LAYERS)
def test_training_step_never_synchronises_with_the_host(cls):
    """CUDA's sync debug mode turns every host synchronisation into an error: a training
    forward and backward of each layer makes none (MABN's counter lives on the host, non-finite
    statistics are flagged on the device); reading the flags once is the one sync."""
    from normdet.layers import nonfinite_layers
    layer = make(cls).cuda().train()
    x = torch.randn(2, 32, 9, 9, device='cuda', requires_grad=True)
    dy = torch.randn_like(x)
    layer(x).backward(dy)  # first step: MABN reads its counter from the buffer once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(3):
            layer(x).backward(dy)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert nonfinite_layers(layer) == []
