# MABN (Yan et al. 2020): moving-average statistics in forward and backward, with
# weight-centralised convolutions (conv_cfg=CenConv) and a buffer of target_batch // batch per GPU
# iterations (32 // 2 = 16 as in the paper).
_base_ = './_base_/ssdlite.py'
norm = 'MABN'
