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
max_epochs = 24
train_dataloader = dict(batch_size={{_base_.mini_batch}}, num_workers=1,
                        dataset=dict(pipeline={{_base_.mini_train_pipeline}}))
val_dataloader = dict(batch_size=16, num_workers=1,
                      dataset=dict(pipeline={{_base_.mini_test_pipeline}}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = {{_base_.mini_optim_wrapper}}
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs, by_epoch=True,
         eta_min=0)
]
auto_scale_lr = dict(enable=True, base_batch_size={{_base_.mini_batch}})
default_hooks = dict(logger=dict(interval=16), checkpoint=dict(interval=4, max_keep_ckpts=1))
