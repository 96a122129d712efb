"""The Triton kernels (normdet.layers._triton) against the PyTorch path and the float64 layers.

On a GPU they run on CUDA. Without one, ``test_kernels_under_the_triton_interpreter`` runs this
file again in a subprocess with ``TRITON_INTERPRET=1`` (Triton's CPU interpreter; it must be set
before triton is imported) and ``NORMDET_KERNELS=triton`` (the layers take the kernels on CPU
tensors too), on small shapes: every kernel, both layouts, fp32 and bf16, odd sizes that leave
partial tiles, and the layers' forward and backward against their float64 selves.
"""
import os
import re
import subprocess
import sys

import pytest
import torch

from normdet.norms import NORMS

INTERPRETED = os.environ.get('TRITON_INTERPRET') == '1'
ON_GPU = torch.cuda.is_available()
DEVICE = 'cuda' if ON_GPU and not INTERPRETED else 'cpu'
kernels = pytest.mark.skipif(not (INTERPRETED or ON_GPU),
                             reason='runs under TRITON_INTERPRET=1 (see the test below) or on a GPU')

SHAPES = [(2, 5, 3, 7), (1, 3, 1, 1), (3, 70, 9, 13)]  # partial tiles in C and H x W
LAYOUTS = [torch.contiguous_format, torch.channels_last]
KERNEL_NORMS = [n.name for n in NORMS.values() if n.kernels]  # the layers that run on the kernels
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


@pytest.mark.skipif(INTERPRETED, reason='this is the interpreted run')
def test_kernels_under_the_triton_interpreter():
    pytest.importorskip('triton')
    env = dict(os.environ, TRITON_INTERPRET='1', NORMDET_KERNELS='triton')
    r = subprocess.run([sys.executable, '-m', 'pytest', __file__, '-q', '-p', 'no:cacheprovider'],
                       env=env, capture_output=True, text=True, timeout=900,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    summary = r.stdout.strip().splitlines()[-1]
    passed = re.search(r'(\d+) passed', summary)
    assert passed and int(passed.group(1)) >= 31 and 'failed' not in summary, summary


def _inputs(shape, dtype, layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2 + 3).to(DEVICE, dtype)
    return x.contiguous(memory_format=layout)


@kernels
@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('shape', SHAPES)
def test_primitives_match_the_pytorch_path(shape, dtype, layout):
    from normdet.layers import _triton as T
    from normdet.layers._affine import TorchOps as P
    x = _inputs(shape, dtype, layout)
    n, c = shape[:2]
    g = torch.Generator().manual_seed(1)
    A, B = (torch.randn(n, c, generator=g).to(DEVICE) for _ in range(2))
    c1, c2 = (torch.randn(n, c, generator=g).to(DEVICE) for _ in range(2))
    tau = (torch.randn(c, generator=g) * 0.1).to(DEVICE)
    tol = TOL[dtype]
    for kind in ('nu2', 'moments'):
        for u, v in zip(T.stats(x, kind), P.stats(x, kind)):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-4)
    for t in (None, tau):
        z = T.affine(x, A, B, t)
        assert z.dtype == x.dtype and z.stride() == x.stride()
        torch.testing.assert_close(z.float(), P.affine(x, A, B, t).float(), **tol)
        gz = _inputs(shape, dtype, layout, seed=2)
        got, want = T.grad_sums(gz, x, A, B, t), P.grad_sums(gz, x, A, B, t)
        for u, v in zip(got[:3], want[:3]):
            if v is not None:
                torch.testing.assert_close(u, v, rtol=1e-3, atol=1e-3 * (1 + v.abs().max()))
        for cc1 in (None, c1):
            dx = T.input_grad(gz, x, A, B, t, cc1, c2, T.grad_sums(gz, x, A, B, t)[3])
            assert dx.dtype == x.dtype and dx.stride() == x.stride()
            aux = P.grad_sums(gz, x, A, B, t)[3]  # consumed: input_grad may reuse its buffer
            torch.testing.assert_close(dx.float(), P.input_grad(gz, x, A, B, t, cc1, c2,
                                                                 aux).float(), **tol)


def _layer(name, c):
    from normdet.norms import get_norm
    layer = get_norm(name).build(c)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # live parameters: a non-zero SC module, TLU thresholds, eps_l
        for p in layer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return layer


@kernels
@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('name', KERNEL_NORMS)
@pytest.mark.parametrize('train', [True, False])
def test_layers_on_the_kernels_match_float64(name, train, layout):
    """Forward, input and parameter gradients of each layer on the kernels (fp32) against the
    same layer in float64 (which runs the PyTorch path), over 3 steps (MABN's moving averages)."""
    import copy
    fast = _layer(name, 12).to(DEVICE).train(train)
    ref = copy.deepcopy(fast).cpu().double()
    for step in range(3):
        x = _inputs((2, 12, 5, 6), torch.float32, layout, seed=10 + step)
        dy = _inputs((2, 12, 5, 6), torch.float32, layout, seed=20 + step)
        xf, xd = x.clone().requires_grad_(), x.cpu().double().requires_grad_()
        yf, yd = fast(xf), ref(xd)
        yf.backward(dy)
        yd.backward(dy.cpu().double())
        torch.testing.assert_close(yf.cpu().double(), yd, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(xf.grad.cpu().double(), xd.grad, rtol=1e-4, atol=1e-4)
        for (pn, pf), pd in zip(fast.named_parameters(), ref.parameters()):
            if pd.grad is not None:
                torch.testing.assert_close(pf.grad.cpu().double(), pd.grad, rtol=1e-3,
                                           atol=1e-4, msg=lambda m: f'{pn}: {m}')
            pf.grad, pd.grad = None, None
    for (bn, bf), bd in zip(fast.named_buffers(), ref.buffers()):
        torch.testing.assert_close(bf.cpu().double(), bd.double(), rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{bn}: {m}')


@kernels
@pytest.mark.parametrize('name', KERNEL_NORMS)
def test_layers_on_the_kernels_under_bf16_autocast(name):
    """bf16 activations (autocast): output in bf16, close to the float64 layer on the same bf16
    input; the kernels accumulate in float32."""
    import copy
    layer = _layer(name, 8).to(DEVICE)
    ref = copy.deepcopy(layer).cpu().double()
    x = _inputs((2, 8, 4, 5), torch.bfloat16, torch.channels_last)
    y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.cpu().double(), ref(x.cpu().double()), rtol=3e-2, atol=3e-2)
