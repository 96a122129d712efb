# BatchNorm with per-GPU statistics (the baseline; norm_eval=False: trained from scratch).
_base_ = './_base_/ssdlite.py'
norm = 'BN'
