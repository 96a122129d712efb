# DN-B (Liu et al. 2021): BN whose scale and shift an SC module generates per sample and channel.
_base_ = './_base_/mask_rcnn_r50_fpn.py'
norm = 'DNB'
