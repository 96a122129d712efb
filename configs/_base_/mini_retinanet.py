# RetinaNet on ResNet-18 and the embedded benchmark (128 px), from scratch, with every norm
# placed as in configs/_base_/retinanet_r50_fpn.py: backbone, FPN and both towers (one norm per
# level for batch-statistics norms). Mini sizes: FPN and towers of 128 channels, 2 convs per
# tower, 4 levels (P3-P6: 16x16 to 2x2), anchors from 16 px (octave base scale 2).
_base_ = ['./retinanet_r50_fpn.py', './mini_benchmark.py']

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128, num_outs=4),
    bbox_head=dict(in_channels=128, feat_channels=128, stacked_convs=2,
                   anchor_generator=dict(octave_base_scale=2, strides=[8, 16, 32, 64])))
train_dataloader = dict(batch_size={{_base_.mini_batch}}, num_workers=1,
                        dataset=dict(pipeline={{_base_.mini_train_pipeline}}))
val_dataloader = {{_base_.mini_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.mini_train_cfg}}
optim_wrapper = {{_base_.mini_optim_wrapper}}
param_scheduler = {{_base_.mini_param_scheduler}}
auto_scale_lr = dict(enable=True, base_batch_size={{_base_.mini_batch}})
default_hooks = {{_base_.mini_default_hooks}}
tta_pipeline = {{_base_.mini_tta_pipeline}}
