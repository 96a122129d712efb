"""Shared helpers for the tests that use the real OpenMMLab stack."""
import os.path as osp

import normdet  # noqa: F401  (registers the layers)
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.utils import get_installed_path

register_all_modules(init_default_scope=True)

NORMS = ('BN', 'SyncBN', 'GN', 'FRN', 'MABN', 'DNB', 'DNC', 'RBN')
NORMDET_NORMS = ('FRN', 'MABN', 'DNB', 'DNC', 'RBN')
PACKAGED = {
    'ssdlite': 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
    'retinanet': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'mask_rcnn': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
}


def packaged(name: str) -> Config:
    """mmdet's packaged config (``Config.fromfile`` resolves ``mmdet::`` only inside ``_base_``)."""
    rel = PACKAGED[name].split('::', 1)[1]
    return Config.fromfile(osp.join(get_installed_path('mmdet'), '.mim', 'configs', rel))
