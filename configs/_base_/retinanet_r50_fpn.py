# RetinaNet R50-FPN from scratch, 2x schedule (MABN's detection setting), 2 images per GPU.
# The norm sits in the backbone, the FPN and both head towers, as from-scratch detectors are
# normalised (mmdet's gn-all and scratch configs, the official MABN detector); mmdet's packaged
# RetinaNet normalises only its backbone. norm_options.placement='backbone' restores that.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', './normdet_runtime.py']

norm_cfg = dict(type='BN', requires_grad=True)  # rewritten to `norm` by NormDetRunner
# mmdet's APIs (init_detector, DetInferencer) build a config's model as written; this source
# config becomes a normdet model only when normdet prepares it, so its model refuses to be built
# unprepared with a message naming the config to use (prepare_config sets mmdet's own type back)
model = dict(neck=dict(norm_cfg=norm_cfg), bbox_head=dict(norm_cfg=norm_cfg),
             data_preprocessor=dict(type='NormDetSourceConfig'))
data_root = None  # None: $NORMDET_DATA_ROOT or the embedded synthetic dataset
train_dataloader = dict(batch_size=2, persistent_workers=False)  # exact --resume
val_evaluator = dict(type='NormDetCocoMetric')
test_evaluator = val_evaluator
# lr 0.01 is for 16 images (8 GPUs x 2); it is scaled linearly to the real total batch
auto_scale_lr = dict(enable=True, base_batch_size=16)

# mmdet's test-time augmentation (tools/test.py --tta): each image and its horizontal flip,
# merged by NMS (DetTTAModel), at the test pipeline's size
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(1333, 800), keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])
]
