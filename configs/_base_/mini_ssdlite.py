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
train_dataloader = dict(
    batch_size={{_base_.mini_batch}}, num_workers=1,
    dataset=dict(times=1, dataset=dict(pipeline={{_base_.mini_train_pipeline}})))
val_dataloader = {{_base_.mini_val_dataloader}}
test_dataloader = val_dataloader
train_cfg = {{_base_.mini_train_cfg}}
optim_wrapper = {{_base_.mini_optim_wrapper}}
param_scheduler = {{_base_.mini_param_scheduler}}
auto_scale_lr = dict(enable=True, base_batch_size={{_base_.mini_batch}})
default_hooks = {{_base_.mini_default_hooks}}
tta_pipeline = {{_base_.mini_tta_pipeline}}
