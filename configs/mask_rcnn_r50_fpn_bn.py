# BatchNorm with per-GPU statistics (the baseline; norm_eval=False: trained from scratch).
_base_ = './_base_/mask_rcnn_r50_fpn.py'
norm = 'BN'
