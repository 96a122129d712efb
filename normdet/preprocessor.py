"""Online input normalisation of Revisiting BN, as an option of mmdet's DetDataPreprocessor.

    data_preprocessor = dict(type='RBNDetDataPreprocessor', mean=None, std=None,
                             bgr_to_rgb=True, input_bn=True, bn_weight=0.1)

A BN layer over the 3 input channels runs after batching/padding, replacing the fixed dataset
mean/std: its scale is initialised to bn_weight * 0.58 (the paper's sigma_act) and its shift is
frozen at 0. It is a submodule of the detector, so it is trained, saved and restored with it.
"""
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.registry import MODELS

from .layers import RBN

SIGMA_ACT = 0.58


@MODELS.register_module()
class RBNDetDataPreprocessor(DetDataPreprocessor):

    def __init__(self, *args, input_bn: bool = True, bn_weight: float = 0.1, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_bn = None
        if input_bn:
            self.input_bn = RBN(3, bn_weight=bn_weight * SIGMA_ACT)
            self.input_bn.bias.requires_grad_(False)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        if self.input_bn is not None:
            data['inputs'] = self.input_bn(data['inputs'])
        return data
