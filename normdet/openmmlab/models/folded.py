"""The folded detector as a model type of its own, so that a config builds it and mmdet's and
normdet's tools load folded weights as they load any checkpoint (tools/deploy.py writes both).

    model = dict(type='NormDetFolded', detector='SingleStageDetector', backbone=..., ...)

builds ``dict(type='SingleStageDetector', backbone=..., ...)``, puts it in eval mode and folds
its norms into their convolutions (``normdet.norms.fold_norms``): the folded norms become
``nn.Identity``, their convolutions plain ``nn.Conv2d`` with a bias. Which norms fold is decided
by the model's structure alone (the norm's type, the module feeding it), never by its values, so
a freshly built ``NormDetFolded`` has exactly the modules and keys of the trained model folded by
tools/deploy.py, and its weights load strictly. Its own values mean nothing until they do: it
folds the initial statistics. The config keeps every other key of the detector's, so the report
and the config checks read it as the detector's.
"""
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import MODELS

from ...norms.fuse import fold_norms

FOLDED = 'NormDetFolded'


@MODELS.register_module(name=FOLDED)
def build_folded(detector: str, **detector_cfg):
    """The detector of type ``detector`` built from ``detector_cfg``, in eval mode, folded."""
    model = MMDET_MODELS.build(dict(detector_cfg, type=detector))
    fold_norms(model.eval())
    return model


def folded_model_cfg(model_cfg: dict) -> dict:
    """The model config of ``model_cfg``'s detector folded (a copy)."""
    cfg = dict(model_cfg)
    if cfg['type'] == FOLDED:
        return cfg
    return dict(cfg, type=FOLDED, detector=cfg['type'])
