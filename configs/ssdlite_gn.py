# GroupNorm: per-sample statistics over channel groups, no batch dependence.
_base_ = './_base_/ssdlite.py'
norm = 'GN'
