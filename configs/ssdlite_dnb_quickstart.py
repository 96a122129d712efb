# The quick start (README's first command): configs/ssdlite_dnb.py on a schedule that trains and
# evaluates in a few minutes on a 2-core CPU. Same SSDLite-MobileNetV2 with DN-B everywhere, same
# data and code path; what differs is only what makes it short: 160 px input instead of 320 (the
# anchors are scaled with it: half the sizes, strides of the 160 px feature maps), batch 8, 16
# epochs of the 128 synthetic images (256 iterations), AdamW, and no Expand/MinIoURandomCrop
# (SSD's zoom-out and crop augmentations pay off over 600 epochs, not 16). Tried on 2 cores:
# SGD lr 0.05 with the augmentations (AP 0.3, loss spikes), SGD 0.02 (0.1), AdamW 2e-3 batch 8
# (0.3, kept), AdamW 3e-3 batch 4 (0.1). A from-scratch SSDLite learns mostly box priors in 256
# steps: the quick start shows the workflow, not a converged detector.
_base_ = './ssdlite_dnb.py'

input_size = 160
max_epochs = 16
model = dict(bbox_head=dict(anchor_generator=dict(
    strides=[16, 32, 53, 80, 160, 160],
    min_sizes=[24, 50, 75, 101, 126, 152],
    max_sizes=[50, 75, 101, 126, 152, 160])))
# mmdet's SSDLite pipelines at 160 px (config placeholders cannot re-size the inherited ones),
# without the zoom-out and crop
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion', brightness_delta=32, contrast_range=(0.5, 1.5),
         saturation_range=(0.5, 1.5), hue_delta=18),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, num_workers=2,
                        dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(num_workers=2, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(enable=False, base_batch_size=8)  # the LR below is meant for batch 8
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs, by_epoch=True,
         eta_min=0)
]
default_hooks = dict(logger=dict(interval=8), checkpoint=dict(interval=max_epochs))
log_processor = dict(window_size=8)
