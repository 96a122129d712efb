"""normdet's fixes for mmdet 3.3.0 + mmengine 0.10.7 under torch >= 2.6: mmengine checkpoints load
with weights_only=True (and malicious ones still do not), checkpoints are written atomically, and
SSDLite can predict, the JSON logs are strict JSON, RoI features are right in channels_last and
torchvision's RoIAlign matches mmcv's, and pretty_text is memoised. ``import normdet`` alone
changes nothing of the stack; importing the glue (a config's custom_imports) allows mmengine's
checkpoints (fix 1) and nothing else; ``apply()`` does the rest."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import HOOKS, VISBACKENDS
from mmdet.testing import demo_mm_inputs

import normdet
from mm_utils import packaged
from normdet.openmmlab import stack_fixes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MAKE_CHECKPOINT = textwrap.dedent('''
    import sys, numpy as np, torch
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('train')
    for i in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 + i))
        hub.update_scalar('train/lr', 0.01)
    hub.update_info('iter', 3)
    torch.save(dict(meta=dict(iter=3, seed=np.int64(7), dataset_meta=dict(classes=('a', 'b'))),
                    state_dict=dict(w=torch.ones(2)), message_hub=hub.state_dict()), sys.argv[1])
''')

LOAD = textwrap.dedent('''
    import sys, torch
    if sys.argv[2] == 'glue':
        import normdet.openmmlab  # as a config's custom_imports does: allows mmengine's types
    from mmengine.runner import CheckpointLoader
    ck = CheckpointLoader.load_checkpoint(sys.argv[1], map_location='cpu')  # torch.load default
    print(ck['message_hub']['log_scalars']['train/loss'].mean(), int(ck['meta']['seed']))
''')


def python(code, *args):
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    assert python(MAKE_CHECKPOINT, path).returncode == 0
    plain = python(LOAD, path, 'plain')  # the bug: stock stack cannot read its own checkpoint
    assert plain.returncode != 0 and 'Weights only load failed' in plain.stderr
    fixed = python(LOAD, path, 'glue')  # after importing normdet.openmmlab
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip().splitlines()[-1].split() == ['2.0', '7']


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


class _Getattr:
    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (getattr, (self.obj, self.name))


def test_malicious_checkpoints_still_rejected(tmp_path):
    stack_fixes.apply()
    evil = _RunsCode()
    evil.marker = str(tmp_path / 'pwned')
    torch.save(dict(state_dict={}, x=evil), tmp_path / 'evil.pth')
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(tmp_path / 'evil.pth')
    assert not os.path.exists(evil.marker)
    from mmengine.logging import HistoryBuffer
    import numpy as np
    for obj, name in ((HistoryBuffer, '__init__'), (np.ndarray, 'mean')):
        torch.save(dict(x=_Getattr(obj, name)), tmp_path / 'getattr.pth')
        with pytest.raises(Exception, match=rf"getattr\(.*{obj.__name__}.*'{name}'\); normdet only"):
            torch.load(tmp_path / 'getattr.pth')


def test_import_changes_nothing_of_the_stack_but_the_checkpoint_allow_list():
    """`import normdet` registers nothing, and importing the glue new names only: mmdet's
    SSDHead, mmcv's SyncBN and mmengine's LocalBackend.put stay the stack's own; torch's
    weights_only allow-list gains mmengine's checkpoint types (fix 1), nothing else."""
    code = textwrap.dedent('''
        import mmcv.cnn, mmengine.fileio.backends.local_backend as lb, torch
        from mmdet.models.dense_heads import SSDHead
        from mmdet.registry import MODELS
        put, sync = lb.LocalBackend.put, MODELS.get('SyncBN')
        safe = set(map(str, torch.serialization.get_safe_globals()))
        import normdet
        assert MODELS.get('NormDetSyncBN') is None
        assert set(map(str, torch.serialization.get_safe_globals())) == safe
        import normdet.openmmlab
        assert MODELS.get('SSDHead') is SSDHead, MODELS.get('SSDHead')
        assert MODELS.get('SyncBN') is sync and sync is not normdet.SyncBatchNorm
        assert MODELS.get('NormDetSyncBN') is normdet.SyncBatchNorm
        assert lb.LocalBackend.put is put
        added = set(map(str, torch.serialization.get_safe_globals())) - safe
        fix1 = set(map(str, normdet.openmmlab.stack_fixes.MMENGINE_CHECKPOINT_GLOBALS))
        assert added == fix1 and fix1, (added, fix1)
        normdet.openmmlab.stack_fixes.apply()
        assert lb.LocalBackend.put is not put
        print('ok')
    ''')
    r = python(code)
    assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]


def test_atomic_checkpoint_writes(tmp_path, monkeypatch):
    """After apply(), a save that dies mid-write leaves the old checkpoint intact."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    stack_fixes.apply()
    target = tmp_path / 'epoch_1.pth'
    LocalBackend().put(b'old', target)

    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: (_ for _ in ()).throw(OSError('disk full')))
    with pytest.raises(OSError, match='disk full'):
        LocalBackend().put(b'new-but-cut', target)
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert target.read_bytes() == b'old' and os.listdir(tmp_path) == ['epoch_1.pth']


def test_ssdlite_predicts():
    cfg = packaged('ssdlite')
    stack_fixes.fix_config(cfg.model)
    assert cfg.model.bbox_head.type == 'NormDetSSDHead'
    cfg.model.bbox_head.num_classes = 3
    model = MODELS.build(cfg.model).eval()
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, 160, 160)], num_classes=3)
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model(**data, mode='predict')  # AttributeError 'loss_cls' without the fix
    inst = results[0].pred_instances
    assert len(inst) > 0 and inst.bboxes.shape[1] == 4 and (inst.labels < 3).all()


def test_ssd_head_background_prior():
    """background_prior=0.75: on a blank feature map every anchor of every level starts at
    background probability 0.75, the C classes sharing the rest; without it, 1 / (C + 1)."""
    cfg = packaged('ssdlite')
    stack_fixes.fix_config(cfg.model)
    head_cfg = dict(cfg.model.bbox_head, num_classes=4)
    for prior, want in ((0.75, 0.75), (None, 0.2)):
        head = MODELS.build(dict(head_cfg, background_prior=prior))
        head.init_weights()
        feats = [torch.zeros(1, c, 3, 3) for c in head.in_channels]
        with torch.no_grad():
            scores, _ = head(feats)
        for s in scores:
            p = s.permute(0, 2, 3, 1).reshape(-1, 5).softmax(-1)
            torch.testing.assert_close(p[:, 4], torch.full_like(p[:, 4], want))
            torch.testing.assert_close(p[:, :4], torch.full_like(p[:, :4], (1 - want) / 4))
    with pytest.raises(ValueError, match='background_prior must be a probability'):
        MODELS.build(dict(head_cfg, background_prior=1.0))


def test_roi_features_of_channels_last_maps():
    """mmcv's RoIAlign reads a channels_last map as NCHW (wrong features, no error); the RoI
    extractors of a fixed config give the NCHW features and gradients for either layout."""
    cfg = packaged('mask_rcnn')
    stack_fixes.fix_config(cfg.model)
    roi_head = cfg.model.roi_head
    assert roi_head.bbox_roi_extractor.type == roi_head.mask_roi_extractor.type == \
        'NormDetSingleRoIExtractor'
    fixed = MODELS.build(roi_head.mask_roi_extractor)
    plain = MODELS.build(dict(roi_head.mask_roi_extractor, type='SingleRoIExtractor'))
    feats = [torch.randn(2, 256, s, s) for s in (32, 16, 8, 4)]
    rois = torch.tensor([[0, 4., 6., 60., 50.], [1, 10., 2., 120., 126.], [1, 30., 40., 38., 52.]])

    def run(extractor, layout):
        xs = [f.clone().contiguous(memory_format=layout).requires_grad_() for f in feats]
        out = extractor(tuple(xs), rois)
        out.backward(torch.ones_like(out))
        return out.detach(), [x.grad for x in xs]
    want, want_grads = run(plain, torch.contiguous_format)
    got, grads = run(fixed, torch.channels_last)
    assert torch.equal(got, want)
    assert all(torch.equal(g, w) for g, w in zip(grads, want_grads))
    assert not torch.allclose(run(plain, torch.channels_last)[0], want)  # the bug fixed


def _strict_loads(line):
    def reject(constant):
        raise ValueError(f'{constant} is not JSON')
    return json.loads(line, parse_constant=reject)


def test_logs_are_strict_json(tmp_path):
    """NaN (an AP without ground truth of that size) and inf are written as null, by the vis
    backend (scalars.json and the .json log beside it) and by the test run's logger hook."""
    cfg = packaged('ssdlite')
    stack_fixes.fix_logging(cfg)
    assert cfg.visualizer.vis_backends[0].type == 'NormDetLocalVisBackend'
    assert cfg.default_hooks.logger.type == 'NormDetLoggerHook'
    backend = VISBACKENDS.build(dict(cfg.visualizer.vis_backends[0], save_dir=str(tmp_path)))
    backend.add_scalars({'coco/bbox_mAP_l': float('nan'), 'loss': np.float64('inf'),
                         'coco/bbox_mAP': 0.25}, step=3, file_path='run.json')
    for name in ('scalars.json', 'run.json'):
        row = _strict_loads((tmp_path / name).read_text().splitlines()[0])
        assert row == {'coco/bbox_mAP_l': None, 'loss': None, 'coco/bbox_mAP': 0.25, 'step': 3}
    tags = HOOKS.get('NormDetLoggerHook')._process_tags(
        {'coco/bbox_mAP_s': float('nan'), 'coco/bbox_mAP': 0.5, 'per_class': [1.0, float('inf')]})
    assert json.loads(json.dumps(tags)) == {'coco/bbox_mAP_s': None, 'coco/bbox_mAP': 0.5,
                                            'per_class': [1.0, None]}


def test_torchvision_roi_align_matches_mmcv():
    """The mini Mask R-CNN's RoI extractors use torchvision's RoIAlign (faster on the CPU): the
    same features and gradients as mmcv's op, bit for bit."""
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'mini', 'mask_rcnn_bn.py'))
    for key, size in (('bbox_roi_extractor', 7), ('mask_roi_extractor', 14)):
        extractor = cfg.model.roi_head[key]
        assert extractor.roi_layer.use_torchvision and extractor.roi_layer.output_size == size
        tv = MODELS.build(extractor)
        mmcv_op = MODELS.build(dict(extractor, roi_layer=dict(extractor.roi_layer,
                                                              use_torchvision=False)))
        torch.manual_seed(0)
        feats = [torch.randn(2, 128, s, s) for s in (32, 16, 8, 4)]
        boxes = torch.rand(40, 2, 2) * 128
        rois = torch.cat([torch.randint(0, 2, (40, 1)).float(), boxes.min(1)[0],
                          boxes.max(1)[0]], 1)

        def run(op):
            xs = [f.clone().requires_grad_() for f in feats]
            out = op(tuple(xs), rois)
            out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
            return out.detach(), [x.grad for x in xs]
        (got, grads), (want, want_grads) = run(tv), run(mmcv_op)
        assert got.shape == (40, 128, size, size) and got.abs().sum() > 0
        assert torch.equal(got, want)
        assert all(torch.equal(g, w) for g, w in zip(grads, want_grads))


def test_pretty_text_memoised(monkeypatch):
    """After apply(), a config's pretty_text is formatted once for the same content and again
    once the config changes, with mmengine's own text either way."""
    stack_fixes.apply()
    calls = []
    fget = stack_fixes._PRETTY_TEXT.fget
    monkeypatch.setattr(stack_fixes, '_PRETTY_TEXT',
                        property(lambda cfg: calls.append(1) or fget(cfg)))
    monkeypatch.setattr(stack_fixes, '_PRETTY_MEMO', {})
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'mini', 'ssdlite_bn.py'))
    text = cfg.pretty_text
    assert text == fget(cfg) and 'max_epochs=12' in text
    assert cfg.pretty_text is text and len(calls) == 1
    cfg.train_cfg.max_epochs = 5
    changed = cfg.pretty_text
    assert len(calls) == 2 and 'max_epochs=5' in changed and changed == fget(cfg)
