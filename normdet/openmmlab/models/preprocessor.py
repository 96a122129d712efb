"""Online input normalisation of Revisiting BN, as an option of mmdet's DetDataPreprocessor.

    data_preprocessor = dict(type='RBNDetDataPreprocessor', mean=None, std=None,
                             bgr_to_rgb=True, input_bn=True, bn_weight=0.1)

A BN layer over the 3 input channels runs after batching/padding, replacing the fixed dataset
mean/std: its scale is initialised to bn_weight * 0.58 (the paper's sigma_act) and its shift is
frozen at 0. It is a submodule of the detector, so it is trained, saved and restored with it.

Its batch statistics are taken over the real pixels only: a batch of differently shaped images is
padded with zeros (an 800x1333 and a 1333x800 image make a batch that is 41 % padding), and
statistics over the padding would not match what test-time batches see. The padding is zero
again after the normalisation, as mmdet's own mean/std normalisation leaves it.
"""
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.registry import MODELS

from ...layers import RBN
from ...layers._dist import update_running_stats

SIGMA_ACT = 0.58


def real_pixel_mask(inputs: torch.Tensor, data_samples) -> torch.Tensor:
    """(N, 1, H, W) mask of the pixels that are not padding (all ones without sample metadata)."""
    mask = inputs.new_ones((inputs.shape[0], 1, *inputs.shape[2:]))
    for i, sample in enumerate(data_samples or []):
        h, w = sample.metainfo.get('img_shape', inputs.shape[2:])[:2]
        mask[i, :, h:] = 0
        mask[i, :, :, w:] = 0
    return mask


def masked_batch_norm(bn: RBN, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``bn`` (an RBN) applied to ``x`` with statistics over the pixels where ``mask`` is 1;
    the masked-out pixels come out as 0."""
    if bn.training:
        with torch.no_grad():  # the input needs no gradient, so neither do its statistics
            n = mask.sum() * 1.0
            mean = (x * mask).sum(dim=(0, 2, 3)) / n
            var = ((x - mean.view(1, -1, 1, 1)).square() * mask).sum(dim=(0, 2, 3)) / n
        update_running_stats(bn, mean, var, n, bn.momentum)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.scale * torch.rsqrt(var + bn.eps)
    y = (x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    return y * mask


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
            x = data['inputs']
            data['inputs'] = masked_batch_norm(
                self.input_bn, x, real_pixel_mask(x, data.get('data_samples')))
        return data


SOURCE_CONFIG = 'NormDetSourceConfig'


@MODELS.register_module(name=SOURCE_CONFIG)
def source_config_preprocessor(**kwargs):
    """The data preprocessor type of normdet's source configs (configs/_base_/): ``convert_norm``
    (which ``prepare_config`` runs) sets mmdet's own ``DetDataPreprocessor`` back. Built as it
    is, the model of a source config would be the BN model, whatever its ``norm``, and mmdet's
    APIs would load a normdet checkpoint into it with a warning only and predict with untrained
    layers: it is refused here, saying which config to use."""
    from ...utils.errors import ConfigError
    raise ConfigError(
        "this is a normdet source config (configs/...), which normdet prepares before building "
        "(the config's norm into every norm_cfg, the dataset's classes, MABN's buffers); give "
        "mmdet's init_detector or DetInferencer the config a run dumped into its work dir "
        "(work_dirs/<run>/<config name>.py), or normdet.openmmlab.deploy.checkpoint_config("
        "checkpoint), or call normdet.prepare_config(cfg) before building it")
