# FRN+TLU (Singh & Krishnan 2020) replaces each BN+activation pair (act_cfg=None where the
# component has one; eps=1e-6). The paper asks for LR warm-up: the base schedule's 500-iteration
# linear warm-up stays.
_base_ = './_base_/retinanet_r50_fpn.py'
norm = 'FRN'
