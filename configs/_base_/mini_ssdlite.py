# SSDLite-MobileNetV2 on the embedded benchmark (128 px), from scratch, with every norm placed as
# in configs/_base_/ssdlite.py: backbone, SSD neck and head. The benchmark's objects are 12-80 px
# on 128 px images, so the detector also reads MobileNetV2's stride-8 output (16x16; stride 16
# alone left the small objects, 70 % of them, to 8x8 cells: 0.1 AP instead of 3.1 after 3
# epochs), and the neck adds one 2x2 level: 4 levels (strides 8-64) instead of SSDLite's 6, with
# anchors scaled to the objects.
_base_ = ['./ssdlite.py', './mini_benchmark.py']

model = dict(
    backbone=dict(out_indices=(2, 4, 7)),
    neck=dict(in_channels=(32, 96, 1280), out_channels=(32, 96, 1280, 256), level_strides=(2, ),
              level_paddings=(1, )),
    bbox_head=dict(
        in_channels=(32, 96, 1280, 256),
        anchor_generator=dict(strides=[8, 16, 32, 64], ratios=[[2, 3]] * 4,
                              min_sizes=[12, 24, 48, 80], max_sizes=[24, 48, 80, 128])))
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
