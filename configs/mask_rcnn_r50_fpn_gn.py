# GroupNorm: per-sample statistics over channel groups, no batch dependence.
_base_ = './_base_/mask_rcnn_r50_fpn.py'
norm = 'GN'
