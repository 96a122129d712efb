# GroupNorm: per-sample statistics over channel groups, no batch dependence.
_base_ = './_base_/retinanet_r50_fpn.py'
norm = 'GN'
