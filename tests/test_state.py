"""For every layer: state_dict round trip, and training resumed from a state_dict continues
exactly like an uninterrupted run (parameters updated by SGD, buffers carried)."""
import copy

import pytest
import torch

from normdet.layers import MABN
from normdet.norms import NORMS

LAYERS = [n.layer for n in NORMS.values() if n.layer is not None]  # every normdet layer


def train(layer, opt, steps, seed):
    outs = []
    for it in range(seed, seed + steps):
        g = torch.Generator().manual_seed(it)
        x = torch.randn(2, 8, 4, 4, dtype=torch.float64, generator=g) * (1 + it % 3)
        opt.zero_grad()
        y = layer(x)
        (y * torch.randn(y.shape, dtype=torch.float64, generator=g)).sum().backward()
        opt.step()
        outs.append(y.detach())
    return outs


@pytest.mark.parametrize('cls', LAYERS)
def test_resume_is_exact(cls):
    kw = dict(buffer_size=2, warmup_iters=2, renorm_iters=3) if cls is MABN else {}
    full = cls(8, **kw).double()
    for p in full.parameters():
        torch.nn.init.normal_(p, 0.5, 0.2)
    part = copy.deepcopy(full)
    opt_full = torch.optim.SGD(full.parameters(), lr=0.05, momentum=0.9)
    want = train(full, opt_full, 8, 0)

    opt_part = torch.optim.SGD(part.parameters(), lr=0.05, momentum=0.9)
    train(part, opt_part, 4, 0)
    ckpt = copy.deepcopy(dict(model=part.state_dict(), opt=opt_part.state_dict()))
    resumed = cls(8, **kw).double()
    resumed.load_state_dict(ckpt['model'])
    opt_res = torch.optim.SGD(resumed.parameters(), lr=0.05, momentum=0.9)
    opt_res.load_state_dict(ckpt['opt'])
    got = train(resumed, opt_res, 4, 4)
    for g, w in zip(got, want[4:]):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    for (k, v), (k2, v2) in zip(resumed.state_dict().items(), full.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(resumed.eval()(x), full.eval()(x), rtol=0, atol=0)
