"""tools/benchmark_norms.py runs (tiny shapes) and writes its table: the numbers are for reading,
so only their presence and consistency are checked, never a time; tools/count_instructions.py's
bookkeeping, and a real count under callgrind."""
import json
import os
import shutil

import pytest
import torch
from mm_utils import config_path, tool

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow


def test_benchmark_writes_every_layer(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    tool('benchmark_norms').main(['--quick', '--device', 'cpu', '--out', str(out)])
    result = json.loads(out.read_text())
    rows = result['rows']
    assert result['bandwidth_gb_s'] > 0
    assert len(rows) == 7 * 2 * 2 * 2  # layers x shapes x dtypes x layouts
    assert {r['layer'] for r in rows} == {'BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN'}
    for r in rows:
        assert 'error' not in r, r
        for key in ('fwd_ms', 'fwd_bwd_ms', 'ratio_to_bn_fwd_bwd'):  # the spread over repeats
            assert 0 < r[key]['min'] <= r[key]['median'] <= r[key]['max'], (key, r)
        assert r['floor_fraction_fwd_bwd'] > 0
        if r['layer'] == 'BN':
            assert r['ratio_to_bn_fwd_bwd'] == dict(min=1.0, median=1.0, max=1.0)
    printed = capsys.readouterr().out
    assert '| DNB | 2x32x24x32 | bf16 | channels_last |' in printed


def _benchmark_train(tmp_path, norm, *flags):
    """The rows of tools/benchmark_train.py on SSDLite-mini's BN and ``norm`` configs (one tiny
    repeat at 2 images of the tiny synthetic set) with ``flags``."""
    out = tmp_path / 'train.json'
    tool('benchmark_train').main([
        config_path('mini/ssdlite', 'BN'), config_path('mini/ssdlite', norm), '--device', 'cpu',
        '--iters', '1', '--repeats', '2', '--warmup', '1', *flags, '--out', str(out),
        '--cfg-options', 'train_dataloader.batch_size=2', 'synthetic_data=tiny'])
    rows = json.loads(out.read_text())['rows']
    for r in rows:
        assert r['images'] == 2 and 0 < r['img_s_min'] <= r['img_s_median'] <= r['img_s_max']
        assert r['ratio_to_bn'] > 0
    assert rows[0]['ratio_to_bn'] == rows[1]['ratio_to_bn'] == 1.0
    return rows


def test_benchmark_train_times_each_layout(tmp_path, capsys, synthetic_data):
    """tools/benchmark_train.py on two SSDLite-mini configs in both layouts (one tiny repeat):
    a row per config and layout, ratios to BN in the same layout, channels_last to NCHW."""
    rows = _benchmark_train(tmp_path, 'DNB', '--layouts', 'nchw', 'channels_last')
    assert [(r['norm'], r['layout']) for r in rows] == [
        ('bn', 'nchw'), ('bn', 'channels_last'), ('dnb', 'nchw'), ('dnb', 'channels_last')]
    for r in rows:
        assert (r['layout'] == 'nchw') == ('ratio_to_nchw' not in r)
    assert '| configs/mini/ssdlite_dnb.py | channels_last | fused | auto | 2 |' in capsys.readouterr().out


def test_benchmark_train_times_each_optimizer(tmp_path, capsys, synthetic_data):
    """--optimizers: a row per config and optimizer implementation, each with its flag (the
    config's fused AdamW turned off for foreach), ratios to BN with the same one and to foreach."""
    rows = _benchmark_train(tmp_path, 'FRN', '--optimizers', 'foreach', 'fused')
    assert [(r['norm'], r['optimizer']) for r in rows] == [
        ('bn', 'foreach'), ('bn', 'fused'), ('frn', 'foreach'), ('frn', 'fused')]
    for r in rows:
        assert 'ratio_to_nchw' not in r
        assert (r['optimizer'] == 'foreach') == ('ratio_to_foreach' not in r)
    assert '| configs/mini/ssdlite_frn.py | nchw | fused | auto | 2 |' in capsys.readouterr().out


def test_benchmark_train_times_each_kernels_choice(tmp_path, capsys, synthetic_data,
                                                   monkeypatch):
    """--kernels: a row per config and NORMDET_KERNELS value, ratios to BN with the same one and
    to torch; the variable is as it was afterwards (unset here). On the CPU, auto is the PyTorch
    path too (the kernels are for CUDA; the GPU run times triton against torch)."""
    monkeypatch.delenv('NORMDET_KERNELS', raising=False)
    rows = _benchmark_train(tmp_path, 'DNC', '--kernels', 'torch', 'auto')
    assert [(r['norm'], r['kernels']) for r in rows] == [
        ('bn', 'torch'), ('bn', 'auto'), ('dnc', 'torch'), ('dnc', 'auto')]
    for r in rows:
        assert 'ratio_to_nchw' not in r and 'ratio_to_foreach' not in r
        assert (r['kernels'] == 'torch') == ('ratio_to_torch' not in r)
    assert '| configs/mini/ssdlite_dnc.py | nchw | fused | auto | 2 |' in capsys.readouterr().out
    assert 'NORMDET_KERNELS' not in os.environ


def test_count_instructions_parses_dumps_and_ratios(tmp_path):
    """tools/count_instructions.py's bookkeeping: callgrind's dumps read in their numeric order
    (cg.out.10 after cg.out.9), and ratios to BN at the same shape only."""
    count = tool('count_instructions')
    for i, total in enumerate([7, 100, 250, 400, 900, 1000, 1500, 2000, 2500, 3000], start=1):
        (tmp_path / f'cg.out.{i}').write_text(f'events: Ir\nsummary: {total}\n')
    found = count.counts(str(tmp_path))
    assert found == [7, 100, 250, 400, 900, 1000, 1500, 2000, 2500, 3000]
    rows = count.with_ratios([
        dict(name='BN', shape='2,8,4,4', instructions=100.),
        dict(name='DNB', shape='2,8,4,4', instructions=250.),
        dict(name='DNB', shape='4,8,4,4', instructions=300.),
        dict(name='BN', shape='8,8,2,2', instructions=40.),
        dict(name='FRN', shape='8,8,2,2', instructions=60.)])
    assert [r['x_bn'] for r in rows] == [1.0, 2.5, None, 1.0, 1.5]
    assert '| DNB 2,8,4,4 | 0.00 M | **2.50** |' in count.table(rows)


def test_count_instructions_rejects_a_bad_shape_before_valgrind():
    """--shapes is checked as benchmark_norms checks it, in this process: the error names the
    form, rather than a failed run under callgrind."""
    from normdet.utils.errors import ConfigError
    with pytest.raises(ConfigError, match='--shapes 2,8,x: give N,C,H,W'):
        tool('count_instructions').main(['--shapes', '2,8,x'])


def test_count_instructions_under_callgrind(tmp_path, capsys):
    """A real count of every layer at one tiny shape (skipped without valgrind): every layer's
    count is positive, BN's ratio is 1, and DN-B, with its SC module, runs more instructions per
    call than BN."""
    if shutil.which('valgrind') is None:
        pytest.skip('valgrind is not installed')
    out = tmp_path / 'counts.json'
    tool('count_instructions').main(['--shapes', '2,8,4,4', '--calls', '2', '--out', str(out)])
    rows = {r['name']: r for r in json.loads(out.read_text())['rows']}
    assert set(rows) == {'BN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN'}
    assert all(r['instructions'] > 0 for r in rows.values())
    assert rows['BN']['x_bn'] == 1.0 and rows['DNB']['x_bn'] > 1.0
    assert '| DNB 2,8,4,4 |' in capsys.readouterr().out


def test_model_cost_counts_mult_adds_and_the_sc_modules(capsys):
    """tools/model_cost.py: MobileNetV2 at 224 is the 300 M Mult-Adds of its paper; each weight
    of a DN-B SC module is one Mult-Add per image (its FCs run once per image); BN adds none;
    a detector config counts too."""
    model_cost = tool('model_cost')
    bn = model_cost.main(['--torchvision', 'mobilenet_v2'])
    assert 299e6 < bn['mult_adds'] < 302e6 and bn['sc'] == bn['sc_params'] == 0
    dnb = model_cost.main(['--torchvision', 'mobilenet_v2', '--norm', 'DNB', '--size', '64', '64'])
    from torchvision.models import mobilenet_v2

    from normdet.norms import convert_module
    sc_weights = sum(m.weight.numel() for n, m in convert_module(mobilenet_v2(), 'DNB')
                     .named_modules() if '.sc.' in n + '.' and hasattr(m, 'in_features'))
    assert dnb['sc'] == sc_weights > 0 and dnb['stats'] > 0
    assert dnb['sc_params'] > sc_weights  # the biases are parameters, not Mult-Adds
    det = model_cost.main([config_path('ssdlite', 'DNC'), '--size', '64', '64'])
    assert det['sc'] > 0 and det['stats'] == 0  # DN-C: running statistics in eval
    assert '| SC modules\' FCs |' in capsys.readouterr().out
    from normdet.utils.errors import ConfigError
    with pytest.raises(ConfigError, match='give a config or --torchvision'):
        model_cost.main([])


def test_norm_stats_reads_running_variances_and_dnc_scales(tmp_path, capsys):
    """tools/norm_stats.py on a DN-C detector whose weights are set by hand: the largest running
    variance of each layer, and DN-C's eval scale |gamma + dgamma|, against the SC module's
    equations in float64 (dgamma = FC2(ReLU(FC1([mu, sqrt(var + eps)])))[:C])."""
    from normdet.cli.config import load_config
    from normdet.layers import DNC
    from normdet.openmmlab.deploy import build_model
    config = config_path('mini/ssdlite', 'DNC')
    model = build_model(load_config(config))
    name, layer = [(n, m) for n, m in model.named_modules() if isinstance(m, DNC)][5]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.running_var.copy_(torch.rand(layer.num_features, generator=g) * 900 + 100)
        layer.running_mean.normal_(generator=g)
        layer.sc[2].weight.normal_(generator=g)  # zero at init: dgamma would be only its bias
        layer.weight.uniform_(0.5, 1.5, generator=g)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    rows = tool('norm_stats').main([config, str(ckpt)])
    assert len(rows) == sum(1 for m in model.modules() if isinstance(m, DNC))
    row = {r['layer']: r for r in rows}[name]
    sd = {k: v.double() for k, v in layer.state_dict().items()}
    var, c = sd['running_var'], layer.num_features
    hidden = torch.relu(sd['sc.0.weight'] @ torch.cat([sd['running_mean'], (var + 1e-5).sqrt()])
                        + sd['sc.0.bias'])
    scale = (sd['weight'] + (sd['sc.2.weight'] @ hidden + sd['sc.2.bias'])[:c]).abs()
    assert row['norm'] == 'DNC' and row['channels'] == c
    assert row['max_var'] == pytest.approx(var.max().item(), rel=1e-6)
    assert row['max_gamma'] == pytest.approx(sd['weight'].abs().max().item(), rel=1e-6)
    assert row['max_scale'] == pytest.approx(scale.max().item(), rel=1e-4)
    assert row['median_scale'] == pytest.approx(scale.median().item(), rel=1e-4)
    assert row['max_scale'] > 2 * row['max_gamma']  # the SC module's share shows
    capsys.readouterr()
    tool('norm_stats').main([config, str(ckpt), '--top', '1'])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith('| backbone')
             or ln.startswith('| neck') or ln.startswith('| bbox_head')]
    assert len(lines) == 1 and lines[0].startswith(f'| {name} | DNC |')


def test_benchmark_dist_times_processes_against_one(tmp_path, capsys):
    """tools/benchmark_dist.py: one process of 4 images against 2 processes of 2 (gloo), on the
    tiny data: a row per setting, the same iterations for both (one epoch at the same total
    batch), the baseline's ratio 1, and a bad setting refused."""
    bench = tool('benchmark_dist')
    out = tmp_path / 'bench.json'
    table = bench.main(['--settings', 'BN:1x4', 'SyncBN:2x2', '--work-dir', str(tmp_path),
                        '--out', str(out), '--cfg-options', 'synthetic_data=tiny'])
    assert [(r['norm'], r['processes'], r['images']) for r in table] == [('BN', 1, 4),
                                                                       ('SyncBN', 2, 2)]
    assert table[0]['ratio'] == 1 and table[1]['ratio'] > 0
    iters = {run['iters'] for r in table for run in r['runs']}
    assert len(iters) == 1 and iters.pop() > 0
    assert all(0 < run['train_s'] < run['wall_s'] for r in table for run in r['runs'])
    assert json.loads(out.read_text())['results'][1]['processes'] == 2
    assert '| SyncBN | 2 x 2 |' in capsys.readouterr().out
    from normdet.utils.errors import ConfigError
    with pytest.raises(ConfigError, match='NORM:PROCESSESxIMAGES'):
        bench.main(['--settings', 'BN:8'])
