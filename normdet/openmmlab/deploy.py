"""Whole detectors for deployment (tools/deploy.py): build a config's detector with a
checkpoint's weights, fold its norms (``normdet.norms.fuse.fold_norms``) and check the outputs,
save the folded weights and load them again."""
import io

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch import nn

from ..norms.fuse import fold_norms
from ..utils.io import atomic_write
from . import stack_fixes
from .engine.checkpoints import load_weights


def _flat(outs) -> list:
    if isinstance(outs, torch.Tensor):
        return [outs]
    return [t for o in (outs or []) for t in _flat(o)] if isinstance(outs, (list, tuple)) else []


def build_model(cfg, checkpoint=None, device='cpu'):
    """The detector of a (prepared) config in eval mode, with ``checkpoint``'s weights, which
    must fit it exactly (``normdet.openmmlab.engine.checkpoints.load_weights``)."""
    stack_fixes.apply()  # mmengine checkpoints load with weights_only=True
    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_weights(model, checkpoint)
    else:
        model.init_weights()
    return model.to(device).eval()


@torch.no_grad()
def fold_and_check(model, x: torch.Tensor) -> dict:
    """Fold ``model`` in place and compare its raw outputs on ``x`` before and after."""
    before = _flat(model._forward(x))
    folded = fold_norms(model)
    after = _flat(model._forward(x))
    diff = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
               for a, b in zip(after, before))
    kept = sorted({type(m).__name__ for m in model.modules()
                   if hasattr(m, 'num_features') or isinstance(m, nn.GroupNorm)})
    return dict(folded=folded, kept_norm_types=kept, max_rel_diff=diff)


def save_folded(model, cfg, path: str) -> None:
    buf = io.BytesIO()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(normdet_folded=True, config=cfg.pretty_text)), buf)
    atomic_write(path, buf.getvalue())


def load_folded(cfg, path: str, device='cpu'):
    """Rebuild the folded model: the config's detector, folded the same way, then the weights."""
    model = build_model(cfg, None, 'cpu')
    fold_norms(model)
    model.load_state_dict(torch.load(path, map_location='cpu', weights_only=True)['state_dict'])
    return model.to(device).eval()
