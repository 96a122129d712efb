"""Whole detectors for deployment (tools/deploy.py): build a config's detector with a
checkpoint's weights; fold its norms (``normdet.norms.fuse.fold_norms``) and check the outputs;
save the folded model as a config and weights that mmdet's and normdet's tools load as they are
(``save_folded``; the config's model is a ``NormDetFolded``, ``normdet.openmmlab.models.folded``);
export it to ONNX and check the export with ONNX Runtime (``export_onnx``, ``check_onnx``).

What is checked, timed and exported is the detector's network without its post-processing
(``TensorForward``): for a single-stage detector mmdet's ``_forward`` (``mode='tensor'``), the
backbone, neck and head, whose outputs are the per-level class scores and box deltas; for a
two-stage detector the backbone, neck and RPN head (the FPN features, the per-level RPN scores
and deltas) and the RoI heads on RoIs given as a second input (class scores, box deltas, mask
logits), since mmdet's own ``_forward`` runs the RPN's NMS in between. Not in it: the data
preprocessor (the network's input is its output: normalised and padded; RBN's input BN is part
of it), anchors, box decoding, NMS and rescaling, which mmdet runs after the network.
"""
import copy
import io
import re

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch import nn

from ..norms.fuse import fold_norms
from ..utils.errors import CheckpointError, ExportError
from ..utils.io import atomic_write
from . import stack_fixes
from .engine.checkpoints import load_weights, read_checkpoint
from .engine.runner import building
from .models.folded import FOLDED, folded_model_cfg

OPSET = 18  # the ONNX opset of the export (torch.onnx's exporter, dynamo=True)


def _flat(outs) -> list:
    if isinstance(outs, torch.Tensor):
        return [outs]
    return [t for o in (outs or []) for t in _flat(o)] if isinstance(outs, (list, tuple)) else []


def build_model(cfg, checkpoint=None, device='cpu'):
    """The detector of a (prepared) config in eval mode, with ``checkpoint``'s weights, which
    must fit it exactly (``normdet.openmmlab.engine.checkpoints.load_weights``)."""
    stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
    register_all_modules(init_default_scope=True)
    with building('model'):  # a constructor's error as one ConfigError, as tools/train.py gives
        model = MODELS.build(cfg.model)
    if checkpoint:
        load_weights(model, checkpoint)
    else:
        model.init_weights()
    return model.to(device).eval()


def example_rois(x: torch.Tensor) -> torch.Tensor:
    """RoIs of image 0 of ``x`` for the RoI heads of a two-stage detector, which normally get the
    RPN's proposals: the whole image, two quarters, the centre and a small box."""
    h, w = x.shape[2:]
    boxes = [(0, 0, w, h), (0, 0, w / 2, h / 2), (w / 2, h / 2, w, h),
             (w / 4, h / 4, 3 * w / 4, 3 * h / 4), (w / 8, h / 8, w / 4, h / 4)]
    return torch.tensor([[0., *b] for b in boxes], dtype=x.dtype, device=x.device)


class TensorForward(nn.Module):
    """A detector's network without its post-processing, tensors in and tensors out (the module
    docstring says what it covers): ``forward(x)`` for a single-stage detector,
    ``forward(x, rois)`` for a two-stage one (``rois``: (K, 5) rows of batch index, x1, y1, x2,
    y2 in input pixels)."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector
        self.two_stage = isinstance(detector, TwoStageDetector)
        self.training = detector.training  # a mode of its own would be the detector's

    def example_inputs(self, x: torch.Tensor) -> tuple:
        return (x, example_rois(x)) if self.two_stage else (x,)

    def input_names(self) -> list:
        return ['image', 'rois'] if self.two_stage else ['image']

    def forward(self, x, rois=None) -> tuple:
        d = self.detector
        if not self.two_stage:
            return tuple(_flat(d._forward(x)))
        feats = d.extract_feat(x)
        outs = [*feats, *_flat(d.rpn_head(feats))]
        if d.roi_head.with_bbox:
            bbox = d.roi_head._bbox_forward(feats, rois)
            outs += [bbox['cls_score'], bbox['bbox_pred']]
        if d.roi_head.with_mask:
            outs.append(d.roi_head._mask_forward(feats, rois)['mask_preds'])
        return tuple(outs)


def _max_rel_diff(got, want) -> float:
    """The largest difference of corresponding outputs, each relative to its output's largest
    magnitude."""
    return max(float((g - w).abs().max() / w.abs().max().clamp(min=1e-12))
               for g, w in zip(got, want))


def _types(model) -> dict:
    return {name: type(m) for name, m in model.named_modules()}


@torch.no_grad()
def fold_and_check(model, x: torch.Tensor) -> dict:
    """Fold ``model`` in place and compare its network's outputs on ``x`` before and after;
    ``replaced`` counts the modules folding replaced (0: the folded model is the model)."""
    net = TensorForward(model)
    inputs = net.example_inputs(x)
    before, types = net(*inputs), _types(model)
    folded = fold_norms(model)
    after = net(*inputs)
    kept = sorted({type(m).__name__ for m in model.modules()
                   if hasattr(m, 'num_features') or isinstance(m, nn.GroupNorm)})
    replaced = sum(name in types and types[name] is not t for name, t in _types(model).items())
    return dict(folded=folded, replaced=replaced, kept_norm_types=kept,
                max_rel_diff=_max_rel_diff(after, before))


def folded_config(cfg, replaced: bool = True):
    """A copy of the (prepared) config ``cfg`` whose model is its detector folded
    (``NormDetFolded``), or the same model where folding ``replaced`` nothing (FRN, GN, DN-B)."""
    out = copy.deepcopy(cfg)
    if replaced:
        out.model = folded_model_cfg(cfg.model)
    return out


def save_folded(model, cfg, path: str, checkpoint: str = None, replaced: bool = True) -> str:
    """Save the folded ``model`` (folded from ``cfg``'s detector, with ``checkpoint``'s weights)
    to ``path`` (.pth) and its config beside it (the same name, .py), which tools/test.py, mmdet's
    ``init_detector`` and ``DetInferencer`` read as they read a run's; returns the config's path.
    The weights keep the checkpoint's meta (classes, what normdet recorded of the training) with
    the folded config as its ``cfg``, so ``DetInferencer(weights=path)`` alone builds the model,
    and hold nothing but weights, numbers and strings (plain ``torch.load`` reads them)."""
    config_path = path[:-len('.pth')] + '.py' if path.endswith('.pth') else path + '.py'
    text = folded_config(cfg, replaced).pretty_text
    source = read_checkpoint(checkpoint, mmap=True) if checkpoint else {}
    meta = dict(source.get('meta') or {})
    meta.setdefault('dataset_meta', dict(classes=tuple(cfg.normdet_data['classes'])))
    meta.update(cfg=text, normdet_folded=dict(checkpoint=checkpoint))
    saved = dict(state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
                 meta=meta)
    if source.get('normdet'):  # not what only training reads (random states, ranks' buffers)
        saved['normdet'] = {k: v for k, v in source['normdet'].items()
                            if k not in ('rng', 'rank_buffers')}
    buf = io.BytesIO()
    torch.save(saved, buf)
    atomic_write(config_path, text)
    atomic_write(path, buf.getvalue())
    return config_path


def load_folded(cfg, path: str, device='cpu'):
    """The folded model saved at ``path``: ``cfg`` (its folded config, or the config it was
    folded from) builds it folded, and the weights load strictly."""
    if cfg.model.type != FOLDED:
        cfg = folded_config(cfg)
    return build_model(cfg, path, device)


def _reason(e: Exception) -> str:
    """The root cause of an exporter's exception in one line (and where in the code, when
    torch.export says)."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [re.sub(r'\x1b\[[0-9;]*m', '', line).strip() for line in str(e).splitlines()]
    where = next((line for line in lines if line.startswith('Caused by:')), '')
    return ' '.join(p for p in (f'{type(e).__name__}: {lines[0] if lines else ""}', where) if p)


def export_onnx(net: TensorForward, inputs: tuple, path: str) -> None:
    """Export ``net`` on ``inputs`` (shapes fixed) to the ONNX file ``path`` with torch.onnx's
    exporter (``dynamo=True``: torch.export, then onnxscript); an ExportError, naming the cause
    and the norms the network holds, when it does not export."""
    try:
        program = torch.onnx.export(net, inputs, dynamo=True, opset_version=OPSET,
                                    input_names=net.input_names(), verbose=False)
    except Exception as e:
        norms = sorted({type(m).__name__ for m in net.modules() if hasattr(m, 'num_features')})
        raise ExportError(f'the network (norms in it: {", ".join(norms) or "none"}) does not '
                          f'export to ONNX: {_reason(e)}; docs/deploy.md says what exports') from e
    program.save(path)


@torch.no_grad()
def check_onnx(net: TensorForward, inputs: tuple, path: str, tolerance: float):
    """Run the ONNX file ``path`` with ONNX Runtime (CPU, as many threads as PyTorch's) on
    ``inputs`` and compare its outputs with ``net``'s; an ExportError when one differs by more
    than ``tolerance`` of its largest magnitude. Returns (the comparison, a function running the
    session once)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    given = dict(zip(net.input_names(), inputs))
    feeds = {i.name: given[i.name].cpu().numpy() for i in session.get_inputs()}
    got = [torch.from_numpy(o) for o in session.run(None, feeds)]
    want = [t.cpu() for t in net(*inputs)]
    if len(got) != len(want):
        raise ExportError(f'{path} has {len(got)} outputs where the PyTorch network has '
                          f'{len(want)}; the export dropped or merged some')
    abs_diff = max(float((g - w).abs().max()) for g, w in zip(got, want))
    rel_diff = _max_rel_diff(got, want)
    if not rel_diff <= tolerance:
        raise ExportError(f'{path}: ONNX Runtime differs from PyTorch by {rel_diff:.3g} of an '
                          f'output\'s magnitude (max abs diff {abs_diff:.3g}), more than the '
                          f'tolerance {tolerance:g}; the export computes something else')
    result = dict(outputs=len(got), max_abs_diff=abs_diff, max_rel_diff=rel_diff,
                  tolerance=tolerance)
    return result, lambda: session.run(None, feeds)


def checkpoint_config(checkpoint: str):
    """The prepared config ``checkpoint`` was trained (or folded) with, which mmengine stores in
    every checkpoint: what ``mmdet.apis.init_detector`` needs for a checkpoint whose run's dumped
    config is not at hand (a source config in configs/ builds the unprepared, BN model)."""
    from mmengine.config import Config
    meta = read_checkpoint(checkpoint, mmap=True).get('meta') or {}
    if not meta.get('cfg'):
        raise CheckpointError(f'checkpoint {checkpoint!r} holds no config (meta.cfg); give '
                          'init_detector the config its run dumped into its work dir')
    return Config.fromstring(meta['cfg'], '.py')
