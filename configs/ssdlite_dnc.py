# DN-C (Liu et al. 2021): BN whose scale and shift an SC module generates from the batch
# statistics (the paper reports it does not train normally: kept for comparison).
_base_ = './_base_/ssdlite.py'
norm = 'DNC'
