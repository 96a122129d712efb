# SSDLite-MobileNetV2 from scratch, mmdet's COCO recipe (24 images per GPU x 8 GPUs, 600 epochs
# as RepeatDataset(5) x 120, cosine LR), with normdet's runtime. The norm covers the backbone,
# the SSD neck and the head: every place where the base model normalizes.
_base_ = ['mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', './normdet_runtime.py']

data_root = None  # None: $NORMDET_DATA_ROOT or the embedded synthetic dataset
# mmdet's APIs (init_detector, DetInferencer) build a config's model as written; this source
# config becomes a normdet model only when normdet prepares it, so its model refuses to be built
# unprepared with a message naming the config to use (prepare_config sets mmdet's own type back)
model = dict(data_preprocessor=dict(type='NormDetSourceConfig'))
# MobileNetV2 has 16-, 24- and 144-channel layers: GN needs a group count dividing them all
norm_options = dict(num_groups=8)
# persistent workers would keep their random state across epochs, and --resume could not
# reproduce it; non-persistent ones are re-seeded the same way every epoch
train_dataloader = dict(persistent_workers=False)
val_evaluator = dict(type='NormDetCocoMetric')
test_evaluator = val_evaluator
auto_scale_lr = dict(enable=True, base_batch_size=192)  # LR follows the total batch

# mmdet's test-time augmentation (tools/test.py --tta): each image and its horizontal flip,
# merged by NMS (DetTTAModel), at the test pipeline's size
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(320, 320), keep_ratio=False)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])
]
