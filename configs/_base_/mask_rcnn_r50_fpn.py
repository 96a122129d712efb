# Mask R-CNN R50-FPN from scratch, 2x schedule (the MABN paper's setting), 2 images per GPU;
# box and mask AP. mmdet's Mask R-CNN normalizes only in the backbone.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py', './normdet_runtime.py']

data_root = None  # None: $NORMDET_DATA_ROOT or the embedded synthetic dataset
train_dataloader = dict(batch_size=2, persistent_workers=False)  # exact --resume
test_evaluator = dict(type='NormDetCocoMetric', metric=['bbox', 'segm'])
val_evaluator = test_evaluator
# lr 0.02 is for 16 images (8 GPUs x 2); it is scaled linearly to the real total batch
auto_scale_lr = dict(enable=True, base_batch_size=16)
