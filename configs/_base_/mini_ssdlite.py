# SSDLite-MobileNetV2 on the embedded benchmark (128 px), from scratch, with every norm placed as
# in configs/_base_/ssdlite.py: backbone, SSD neck and head. At 128 px MobileNetV2's two outputs
# are 8x8 and 4x4; the neck adds 2x2 and 1x1 (4 levels instead of 6), and the anchors are scaled
# to the benchmark's objects (12-80 px).
_base_ = ['./ssdlite.py', './mini_benchmark.py']

model = dict(
    neck=dict(out_channels=(96, 1280, 512, 256), level_strides=(2, 2), level_paddings=(1, 1)),
    bbox_head=dict(
        in_channels=(96, 1280, 512, 256),
        anchor_generator=dict(strides=[16, 32, 64, 128], ratios=[[2, 3]] * 4,
                              min_sizes=[16, 32, 56, 88], max_sizes=[32, 56, 88, 128])))
max_epochs = 24
train_dataloader = dict(
    batch_size={{_base_.mini_batch}}, num_workers=1,
    dataset=dict(times=1, dataset=dict(pipeline={{_base_.mini_train_pipeline}})))
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
