_base_ = '../_base_/mini_mask_rcnn.py'
norm = 'BN'
