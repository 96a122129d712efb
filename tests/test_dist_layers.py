"""sync_stats: P processes x batch B must behave as 1 process x batch P*B.

For each layer with cross-process statistics (MABN, DN-B, DN-C, RBN and normdet's SyncBatchNorm,
whose CPU path this exercises), 2 gloo processes with batch 1 each run several training
iterations; their outputs, input gradients, summed parameter gradients (what DDP averages) and
buffers must equal those of one process with the batch of 2, in float64. MABN runs past warm-up so
its ring buffers of x^2 (forward) and g*z (backward) are both exercised."""
import pytest
import torch
import torch.distributed as dist

from dist_utils import run_distributed
from normdet.layers import DNB, DNC, MABN, RBN, SyncBatchNorm

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow

C, ITERS = 6, 5
LAYERS = {
    'MABN': lambda sync: MABN(C, buffer_size=2, warmup_iters=2, renorm_iters=3, r_max=2.0,
                              sync_stats=sync),
    'DNB': lambda sync: DNB(C, reduction=2, min_hidden=3, sync_stats=sync),
    'DNC': lambda sync: DNC(C, reduction=2, min_hidden=3, sync_stats=sync),
    'RBN': lambda sync: RBN(C, sync_stats=sync),
    'SyncBN': lambda sync: SyncBatchNorm(C),
}


def make(name, sync):
    torch.manual_seed(0)
    layer = LAYERS[name](sync).double()
    with torch.no_grad():  # non-trivial parameters (DN's SC module starts at zero)
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return layer.train()


def data(it):
    g = torch.Generator().manual_seed(100 + it)
    x = torch.randn(2, C, 5, 4, generator=g, dtype=torch.float64) * 2 + 0.5
    dy = torch.randn(2, C, 5, 4, generator=g, dtype=torch.float64)
    return x, dy


def run(layer, xs, dys):
    """Iterations of forward/backward; returns per-iteration outputs, dx, param grads, buffers."""
    out = []
    for x, dy in zip(xs, dys):
        x = x.clone().requires_grad_()
        layer.zero_grad()
        y = layer(x)
        y.backward(dy)
        out.append(dict(y=y.detach(), dx=x.grad.detach(),
                        grads={n: p.grad.clone() for n, p in layer.named_parameters()},
                        buffers={n: b.clone() for n, b in layer.named_buffers()}))
    return out


def _worker(rank, world, name, path):
    layer = make(name, sync=True)
    xs, dys = zip(*(data(i) for i in range(ITERS)))
    results = run(layer, [x[rank:rank + 1] for x in xs], [dy[rank:rank + 1] for dy in dys])
    for r in results:  # what DDP does with parameter gradients (sum; it then divides by P)
        for g in r['grads'].values():
            dist.all_reduce(g)
    gathered = [None] * world
    dist.all_gather_object(gathered, results)
    if rank == 0:
        torch.save(gathered, path)


@pytest.mark.parametrize('name', list(LAYERS))
def test_two_processes_equal_one(name, tmp_path):
    path = str(tmp_path / 'dist.pt')
    run_distributed(_worker, 2, name, path)
    per_rank = torch.load(path, weights_only=False)  # written by this test
    xs, dys = zip(*(data(i) for i in range(ITERS)))
    want = run(make(name, sync=False), xs, dys)
    tol = dict(rtol=1e-10, atol=1e-12)
    for it, w in enumerate(want):
        for rank, got in enumerate(per_rank):
            g = got[it]
            torch.testing.assert_close(g['y'], w['y'][rank:rank + 1], **tol)
            torch.testing.assert_close(g['dx'], w['dx'][rank:rank + 1], **tol)
            for n in w['grads']:
                torch.testing.assert_close(g['grads'][n], w['grads'][n], **tol, msg=n)
            for n in w['buffers']:
                torch.testing.assert_close(g['buffers'][n], w['buffers'][n], **tol, msg=n)


def _unsynced_worker(rank, world, path):
    layer = make('DNB', sync=False)
    x, dy = data(0)
    r = run(layer, [x[rank:rank + 1]], [dy[rank:rank + 1]])
    gathered = [None] * world
    dist.all_gather_object(gathered, r[0]['buffers']['running_mean'])
    if rank == 0:
        torch.save(gathered, path)


def test_default_is_per_process(tmp_path):
    """Without sync_stats each process keeps its own statistics (the papers' per-GPU setting)."""
    path = str(tmp_path / 'dist.pt')
    run_distributed(_unsynced_worker, 2, path)
    a, b = torch.load(path, weights_only=False)
    assert not torch.allclose(a, b)
