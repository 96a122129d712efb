# Mask R-CNN on ResNet-18 and the embedded benchmark (128 px), from scratch, box and mask AP, with
# every norm placed as in configs/_base_/mask_rcnn_r50_fpn.py: backbone, FPN, 4conv1fc box head
# and mask head. Mini sizes: FPN of 128 channels, RPN anchors from 16 px, 256 box-head fc units,
# fewer proposals and sampled RoIs (the benchmark has at most 6 objects an image).
_base_ = ['./mask_rcnn_r50_fpn.py', './mini_benchmark.py']

model = dict(
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, conv_out_channels=128, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(in_channels=128, conv_out_channels=128)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))
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
