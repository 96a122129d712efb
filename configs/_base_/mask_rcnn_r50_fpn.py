# Mask R-CNN R50-FPN from scratch, 2x schedule (the MABN paper's setting), 2 images per GPU; box
# and mask AP. The norm sits in the backbone, the FPN, the 4conv1fc box head and the mask head,
# as in mmdet's gn-all/scratch configs and the official MABN detector (mmdet's packaged Mask
# R-CNN normalises only its backbone). norm_options.placement='backbone' keeps the norm in the
# backbone only (the heads keep their 4conv1fc architecture, without norms).
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py', './normdet_runtime.py']

norm_cfg = dict(type='BN', requires_grad=True)  # rewritten to `norm` by NormDetRunner
# mmdet's APIs (init_detector, DetInferencer) build a config's model as written; this source
# config becomes a normdet model only when normdet prepares it, so its model refuses to be built
# unprepared with a message naming the config to use (prepare_config sets mmdet's own type back)
model = dict(
    data_preprocessor=dict(type='NormDetSourceConfig'),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))
data_root = None  # None: $NORMDET_DATA_ROOT or the embedded synthetic dataset
train_dataloader = dict(batch_size=2, persistent_workers=False)  # exact --resume
test_evaluator = dict(type='NormDetCocoMetric', metric=['bbox', 'segm'])
val_evaluator = test_evaluator
# lr 0.02 is for 16 images (8 GPUs x 2); it is scaled linearly to the real total batch
auto_scale_lr = dict(enable=True, base_batch_size=16)
