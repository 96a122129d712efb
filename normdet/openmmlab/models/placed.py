"""A MobileNetV2 backbone with the norm in one kind of its convolutions only, for the placement
ablation of issue 31 (why GN never leaves the plateau in MobileNetV2):

    backbone=dict(type='NormDetMobileNetV2', norm_cfg=<the norm>, placement='depthwise',
                  other_norm_cfg=<the BN it replaces>, ...)

``placement='depthwise'``: ``norm_cfg`` follows the 17 depthwise 3x3 convolutions only;
``'pointwise'``: it follows the 34 1x1 convolutions (expansions, projections, the last conv)
only. Every other convolution (and the dense 3x3 stem) keeps ``other_norm_cfg``. The choice is
made in the constructor, so a dumped config rebuilds the same model (the same state_dict keys)
wherever it is built. ``convert_norm(..., placement='depthwise' | 'pointwise')`` writes it.
"""
from mmcv.cnn import ConvModule, build_norm_layer
from mmdet.models.backbones import MobileNetV2
from mmdet.registry import MODELS

from ...utils.errors import ConfigError

KINDS = ('depthwise', 'pointwise')


def conv_kind(module: ConvModule) -> str:
    """'depthwise', 'pointwise' (1x1) or 'dense' (any other conv)."""
    conv = module.conv
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return 'depthwise'
    return 'pointwise' if tuple(conv.kernel_size) == (1, 1) else 'dense'


@MODELS.register_module()
class NormDetMobileNetV2(MobileNetV2):
    def __init__(self, *args, placement: str = 'depthwise', other_norm_cfg: dict = None,
                 **kwargs):
        if placement not in KINDS:
            raise ConfigError(f'NormDetMobileNetV2: placement {placement!r}; choose one of '
                              f'{", ".join(KINDS)}')
        super().__init__(*args, **kwargs)
        self.placement = placement
        other = other_norm_cfg or dict(type='BN')
        for module in self.modules():
            if isinstance(module, ConvModule) and module.with_norm \
                    and conv_kind(module) != placement:
                delattr(module, module.norm_name)
                module.norm_name, norm = build_norm_layer(other, module.conv.out_channels)
                module.add_module(module.norm_name, norm)
