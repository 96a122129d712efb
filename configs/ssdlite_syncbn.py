# SyncBN: batch statistics reduced over all processes (one process: plain BN).
_base_ = './_base_/ssdlite.py'
norm = 'SyncBN'
