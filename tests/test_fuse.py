"""fold_norms on the three detectors: every eval-mode norm with an eval_affine in the table
(BN/SyncBN/RBN/MABN/DN-C) folds into its conv, CenConv becomes a plain conv, and the outputs do
not change (float64)."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mm_utils import REPO
from normdet import CenConv2d, prepare_config
from normdet.norms import fold_norms
from normdet.openmmlab.models.heads import PerLevelNorm
from normdet.norms import NORMS

FOLDABLE = tuple({s.layer_class for s in NORMS.values() if s.eval_affine is not None} | {_BatchNorm})
FOLDABLE_NORMS = [n.lower() for n, s in NORMS.items() if s.eval_affine is not None]


# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('synthetic_data')]


def build(detector, norm):
    cfg = prepare_config(Config.fromfile(osp.join(REPO, 'configs', f'{detector}_{norm}.py')))
    model = MODELS.build(cfg.model)
    model.init_weights()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-looking statistics and parameters (a live DN-C SC module)
        for m in model.modules():
            if isinstance(m, FOLDABLE):
                if hasattr(m, 'running_mean'):
                    m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                for p in m.parameters():
                    p.uniform_(0.5, 1.5, generator=g) if p.dim() == 1 else p.normal_(
                        0, 0.1, generator=g)
    return model.double().eval()


def outputs(model, detector, x):
    feats = model.extract_feat(x)
    return list(model._forward(x)) if detector == 'ssdlite' else list(feats)


def flat(outs):
    return [t for o in outs for t in (o if isinstance(o, (list, tuple)) else [o])]


@pytest.mark.parametrize('norm', FOLDABLE_NORMS)
@pytest.mark.parametrize('detector', ['ssdlite', 'retinanet_r50_fpn', 'mask_rcnn_r50_fpn'])
def test_fold_keeps_outputs(detector, norm):
    model = build(detector, norm)
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64)
    before = flat(outputs(model, detector, x))
    # RBN's input BN has no conv before it; RetinaNet's per-level tower norms follow a conv
    # shared by the levels, so no single conv can hold them
    stay = {id(m) for m in model.data_preprocessor.modules()} | {
        id(c) for m in model.modules() if isinstance(m, PerLevelNorm) for c in m.norms}
    norms = [m for m in model.modules() if isinstance(m, FOLDABLE) and id(m) not in stay]
    n = fold_norms(model)
    left = [m for m in model.modules() if isinstance(m, FOLDABLE) and id(m) not in stay]
    assert n == len(norms) and n > 20 and not left
    assert not any(isinstance(m, CenConv2d) for m in model.modules())
    after = flat(outputs(model, detector, x))
    for a, b in zip(before, after):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


def test_fold_needs_eval_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match='needs eval mode'):
        fold_norms(model)


def test_norm_before_conv_is_not_folded():
    from mmcv.cnn import ConvModule
    m = ConvModule(4, 4, 3, norm_cfg=dict(type='BN'), order=('norm', 'conv', 'act')).eval()
    assert fold_norms(m) == 0


def test_deploy_tool_saves_a_loadable_folded_model(tmp_path):
    """tools/deploy.py as a user runs it on a checkpoint: folds, checks, times and saves; the saved
    model, rebuilt by load_folded, computes what the checkpoint's unfolded model computes."""
    import json

    from mm_utils import run_cli
    from normdet.cli.config import load_config
    from normdet.openmmlab.deploy import load_folded
    config = osp.join(REPO, 'configs', 'ssdlite_mabn.py')
    model = build('ssdlite', 'mabn').float()  # trained-looking statistics
    ckpt, out = tmp_path / 'model.pth', tmp_path / 'folded.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    r = run_cli('tools/deploy.py', config, str(ckpt), '--out', str(out), '--iters', '2',
                '--size', '96', '96', timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout[r.stdout.index('{'):r.stdout.rindex('}') + 1])
    assert result['folded'] > 20 and result['max_rel_diff'] < 1e-4
    assert result['median_s_before'] > 0 and result['median_s_after'] > 0
    assert 'MABN' not in result['kept_norm_types']
    folded = load_folded(load_config(config), str(out))
    assert not any(isinstance(m, FOLDABLE) for m in folded.backbone.modules())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(flat(folded._forward(x)), flat(model._forward(x))):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

