# SyncBN: batch statistics reduced over all processes (one process: plain BN).
_base_ = './_base_/mask_rcnn_r50_fpn.py'
norm = 'SyncBN'
