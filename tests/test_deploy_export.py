"""Deployment (issue 32, items 2 and 3): mmdet's own inference APIs on normdet runs in a fresh
process; tools/deploy.py's folded model, which tools/test.py evaluates to the checkpoint's COCO
numbers; its ONNX export of SSDLite, RetinaNet and Mask R-CNN with every norm, checked against
PyTorch by ONNX Runtime; the layers' plain-op paths that the exporters trace; one-line errors for
a network that does not export or whose export computes something else. No test asserts a time.
"""
import json
import os.path as osp
import pickle
import re
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from mm_utils import NORMS, REPO, config_path, run_cli, small_options
from normdet import DNB, FRN
from normdet.utils.errors import ExportError

slow = pytest.mark.slow  # builds or trains real detectors, or launches processes
DETECTORS = ('ssdlite', 'retinanet', 'mask_rcnn')


def mini(detector: str, norm: str) -> str:
    return osp.join(REPO, 'configs', 'mini', f'{detector}_{norm.lower()}.py')


def trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    """Statistics and affines as training leaves them, and a live DN SC module (its last layer
    starts at zero), so that every norm computes something of its own."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, 'running_var', None) is not None:
                if getattr(m, 'running_mean', None) is not None:
                    m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            if hasattr(m, 'num_features') or isinstance(m, nn.GroupNorm):
                for name, p in m.named_parameters(recurse=False):
                    if name in ('weight', 'scale'):
                        p.uniform_(0.5, 1.5, generator=g)
                    else:
                        p.normal_(0, 0.1, generator=g)
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.05, generator=g)
                m.bias.normal_(0, 0.05, generator=g)
    return model


# --- the layers' export paths --------------------------------------------------------------------

LAYERS = {
    'FRN': lambda: FRN(6),
    'FRN-learnable-eps-no-TLU': lambda: FRN(6, tlu=False, learnable_eps=True),
    'DNB': lambda: DNB(6),
    'DNB-normalized': lambda: DNB(6, sc_input='normalized'),
}


@pytest.mark.parametrize('name', LAYERS)
@pytest.mark.parametrize('hw', [(5, 7), (1, 1)])
def test_export_paths_compute_what_the_layers_compute(name, hw):
    """What an exporter traces (plain ops) is what the layer computes in eval (float64)."""
    layer = trained_looking(LAYERS[name]()).double().eval()
    x = torch.randn(3, 6, *hw, dtype=torch.float64)
    plain = layer._plain(x, layer._eps_on(hw[0] * hw[1])) if isinstance(layer, FRN) \
        else layer._eval_plain(x)
    torch.testing.assert_close(plain, layer(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name', ['FRN', 'DNB'])
def test_layers_export_to_onnx(name, tmp_path):
    import onnxruntime as ort
    layer = trained_looking(LAYERS[name]()).eval()
    x = torch.randn(2, 6, 8, 8)
    path = str(tmp_path / 'layer.onnx')
    torch.onnx.export(layer, (x,), dynamo=True, verbose=False).save(path)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, layer(x).numpy(), rtol=1e-5, atol=1e-5)


# --- the export's checks --------------------------------------------------------------------------

class _Tiny(nn.Module):
    """A stand-in detector: ``_forward`` is what TensorForward runs of a single-stage one."""

    def __init__(self, data_dependent=False):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
        self.data_dependent = data_dependent

    def _forward(self, x):
        y = self.bn(self.conv(x))
        if self.data_dependent and y.sum() > 0:  # control flow on values: torch.export refuses
            y = -y
        return [y]


def test_a_network_that_does_not_export_is_one_line(tmp_path):
    from normdet.openmmlab.deploy import TensorForward, export_onnx
    net = TensorForward(_Tiny(data_dependent=True).eval())
    with pytest.raises(ExportError, match='norms in it: BatchNorm2d.*does not export to ONNX') as e:
        export_onnx(net, (torch.randn(1, 3, 8, 8),), str(tmp_path / 'x.onnx'))
    assert '\n' not in str(e.value)


def test_an_export_that_computes_something_else_is_refused(tmp_path):
    from normdet.openmmlab.deploy import TensorForward, check_onnx, export_onnx
    net = TensorForward(_Tiny().eval())
    inputs, path = (torch.randn(1, 3, 8, 8),), str(tmp_path / 'x.onnx')
    export_onnx(net, inputs, path)
    check, run = check_onnx(net, inputs, path, tolerance=1e-5)
    assert check['outputs'] == 1 and check['max_rel_diff'] <= 1e-5 and len(run()) == 1
    with torch.no_grad():
        net.detector.bn.bias += 1  # PyTorch's model is no longer the exported one
    with pytest.raises(ExportError, match='ONNX Runtime differs from PyTorch by .* more than the '
                                          'tolerance') as e:
        check_onnx(net, inputs, path, tolerance=1e-3)
    assert '\n' not in str(e.value)


# --- every detector and norm to ONNX --------------------------------------------------------------

@slow
@pytest.mark.usefixtures('synthetic_data')
@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('detector', DETECTORS)
def test_onnx_export_matches_pytorch(detector, norm, tmp_path):
    """The folded network exports, and ONNX Runtime computes what PyTorch computes (float32: a few
    1e-6 of each output's magnitude, 4e-4 for SSDLite-FRN whose 1x1 maps amplify rounding)."""
    from normdet.cli.config import load_config
    from normdet.openmmlab.deploy import (TensorForward, build_model, check_onnx, export_onnx,
                                          fold_and_check)
    torch.manual_seed(0)
    model = trained_looking(build_model(load_config(mini(detector, norm),
                                                    {'synthetic_data': 'tiny'})))
    net = TensorForward(model)
    inputs = net.example_inputs(torch.randn(1, 3, 64, 64))
    assert fold_and_check(model, inputs[0])['max_rel_diff'] < 1e-5
    path = str(tmp_path / 'model.onnx')
    export_onnx(net, inputs, path)
    check, _ = check_onnx(net, inputs, path, tolerance=1e-3)
    # SSDLite, RetinaNet: scores and deltas of 4 levels; Mask R-CNN: 5 FPN levels, their RPN
    # scores and deltas, the RoI heads' scores, deltas and mask logits
    assert check['outputs'] == (18 if detector == 'mask_rcnn' else 8)


@slow
def test_deploy_tool_exports_checks_and_times(tmp_path):
    """tools/deploy.py --onnx on Mask R-CNN (the two-stage path): the export's check and both
    speeds are printed (never asserted)."""
    onnx = tmp_path / 'mask_rcnn.onnx'
    r = run_cli('tools/deploy.py', mini('mask_rcnn', 'MABN'), '--onnx', str(onnx), '--size', '64',
                '64', '--iters', '2', '--device', 'cpu', '--cfg-options', 'synthetic_data=tiny',
                timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout[r.stdout.index('{'):r.stdout.rindex('}') + 1])
    o = result['onnx']
    assert onnx.is_file() and o['outputs'] == 18 and o['max_rel_diff'] <= o['tolerance']
    for side in ('pytorch_s', 'onnxruntime_s'):
        assert set(o[side]) == {'median', 'min', 'max'}
    check = next(line for line in r.stdout.splitlines() if line.startswith('[normdet] ONNX:'))
    assert 'max abs diff' in check and 'tolerance 0.001' in check
    speed = next(line for line in r.stdout.splitlines() if line.startswith('[normdet] speed'))
    assert re.search(r'PyTorch median [0-9.]+ ms \(min [0-9.]+, max [0-9.]+\), ONNX Runtime '
                     r'median [0-9.]+ ms \(min [0-9.]+, max [0-9.]+\); ratio ONNX Runtime / '
                     r'PyTorch [0-9.]+$', speed), speed


# --- a trained run: mmdet's APIs, tools/test.py on the folded model -------------------------------

@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    from normdet.data import generate_synthetic_coco
    return generate_synthetic_coco(str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=4,
                                   image_size=(128, 128))


def train(config: str, data_root: str, work_dir) -> tuple:
    """A tiny run of ``config``, as a user trains: (the config it dumped, its checkpoint)."""
    r = run_cli('tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options',
                *small_options(config, data_root), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return str(work_dir / osp.basename(config)), str(work_dir / 'epoch_1.pth')


@pytest.fixture(scope='module')
def ssdlite_mabn(tiny_coco, tmp_path_factory):
    return train(mini('ssdlite', 'MABN'), tiny_coco, tmp_path_factory.mktemp('ssdlite_mabn'))


@pytest.fixture(scope='module')
def folded(ssdlite_mabn, tmp_path_factory):
    """tools/deploy.py --out on the trained run: (folded config, folded weights)."""
    config, checkpoint = ssdlite_mabn
    out = tmp_path_factory.mktemp('folded') / 'folded.pth'
    r = run_cli('tools/deploy.py', config, checkpoint, '--out', str(out), '--iters', '1',
                '--size', '64', '64', '--device', 'cpu', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'tools/test.py {str(out)[:-4]}.py {out}' in r.stdout
    return str(out)[:-4] + '.py', str(out)


def evaluate(config: str, checkpoint: str, work_dir) -> tuple:
    """tools/test.py: (the metrics of coco_metrics.json, the raw predictions)."""
    r = run_cli('tools/test.py', config, checkpoint, '--work-dir', str(work_dir), '--out',
                str(work_dir / 'predictions.pkl'), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(work_dir / 'predictions.pkl', 'rb') as f:
        predictions = pickle.load(f)
    return json.loads((work_dir / 'coco_metrics.json').read_text())['metrics'], predictions


@slow
def test_folded_model_evaluates_as_its_checkpoint(ssdlite_mabn, folded, tmp_path):
    """tools/test.py takes the folded config and weights as they are, and gives the unfolded
    checkpoint's COCO numbers and (to float32 rounding) its detections' scores. (Folding rounds
    differently: detections of nearly equal scores, as a 1-epoch model's are, may change places,
    so the scores are compared sorted and the metrics to 1e-3.)"""
    want, want_pred = evaluate(*ssdlite_mabn, tmp_path / 'checkpoint')
    got, got_pred = evaluate(*folded, tmp_path / 'folded')
    assert got.keys() == want.keys() and len(got_pred) == len(want_pred)
    for key in want:
        assert (got[key] is None) == (want[key] is None), key
        assert want[key] is None or abs(got[key] - want[key]) < 1e-3, (key, got[key], want[key])
    for g, w in zip(got_pred, want_pred):
        torch.testing.assert_close(g['pred_instances']['scores'].sort().values,
                                   w['pred_instances']['scores'].sort().values,
                                   rtol=1e-4, atol=1e-5)
    saved = torch.load(folded[1], weights_only=True)  # weights, numbers and strings only
    assert saved['meta']['cfg'].count("type='NormDetFolded'") == 1
    assert not any('.mabn.' in k for k in saved['state_dict'])


INFER = textwrap.dedent('''
    # a fresh process, as a user's script: nothing of normdet imported unless asked
    import json, sys
    config, checkpoint, image, how = sys.argv[1:5]
    if how == 'import':
        import normdet.openmmlab
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    out = {}
    if how == 'checkpoint_config':
        from normdet.openmmlab.deploy import checkpoint_config
        config = checkpoint_config(checkpoint)
    if config != 'none':
        model = init_detector(config, checkpoint, device='cpu')
        p = inference_detector(model, image).pred_instances
        out['init_detector'] = dict(boxes=len(p.bboxes),
                                    masks=len(p.masks) if 'masks' in p else None)
    inferencer = DetInferencer(None if config == 'none' else config, checkpoint, device='cpu',
                               show_progress=False)
    p = inferencer(image, no_save_vis=True)['predictions'][0]
    out['DetInferencer'] = dict(boxes=len(p['bboxes']), masks=len(p.get('masks', [])) or None)
    print(json.dumps(out))
''')


def infer(config, checkpoint, image, how='custom_imports') -> dict:
    r = run_cli('-c', INFER, config, checkpoint, image, how, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def val_image(data_root: str) -> str:
    coco = json.loads(open(osp.join(data_root, 'annotations', 'instances_val2017.json')).read())
    return osp.join(data_root, 'val2017', coco['images'][0]['file_name'])


@slow
def test_mmdet_apis_on_a_run(ssdlite_mabn, folded, tiny_coco):
    """init_detector + inference_detector and DetInferencer, in a fresh process: on the run's
    dumped config (its custom_imports registers normdet and allows mmengine's checkpoints), on
    the checkpoint alone (with nothing imported: it holds tensors, numbers and strings only, and
    its stored config's custom_imports registers normdet; and after import normdet.openmmlab), on
    the config stored in the checkpoint, and on the folded model."""
    config, checkpoint = ssdlite_mabn
    image = val_image(tiny_coco)
    for args in ((config, checkpoint), ('none', checkpoint), ('none', checkpoint, 'import'),
                 (config, checkpoint, 'checkpoint_config'), folded, ('none', folded[1])):
        out = infer(args[0], args[1], image, *args[2:])
        for api in out.values():
            assert api['boxes'] > 0 and api['masks'] is None, (args, out)


@slow
def test_mmdet_apis_refuse_a_source_config(ssdlite_mabn, tiny_coco):
    """init_detector on a source config (configs/...) with a normdet checkpoint: one clear error
    naming the configs to use, not the BN model with untrained layers after a warning."""
    r = run_cli('-c', INFER, config_path('ssdlite', 'MABN'), ssdlite_mabn[1],
                val_image(tiny_coco), 'plain', timeout=600)
    assert r.returncode != 0
    assert 'normdet source config' in r.stderr and 'dumped into its work dir' in r.stderr
    assert 'do not match' not in r.stderr + r.stdout  # refused before any weights were loaded


@slow
def test_mmdet_apis_on_a_mask_rcnn_run(tiny_coco, tmp_path):
    """Boxes and masks out of a Mask R-CNN run's dumped config and checkpoint."""
    config, checkpoint = train(mini('mask_rcnn', 'DNB'), tiny_coco, tmp_path)
    out = infer(config, checkpoint, val_image(tiny_coco))
    for api in out.values():
        assert api['boxes'] > 0 and api['masks'] == api['boxes'], out
