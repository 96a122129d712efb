# SSDLite-MobileNetV2 from scratch, mmdet's COCO recipe (24 images per GPU x 8 GPUs, 600 epochs
# as RepeatDataset(5) x 120, cosine LR), with normdet's runtime. The norm covers the backbone,
# the SSD neck and the head: every place where the base model normalizes.
_base_ = ['mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py', './normdet_runtime.py']

data_root = None  # None: $NORMDET_DATA_ROOT or the embedded synthetic dataset
# MobileNetV2 has 16-, 24- and 144-channel layers: GN needs a group count dividing them all
norm_options = dict(num_groups=8)
# persistent workers would keep their random state across epochs, and --resume could not
# reproduce it; non-persistent ones are re-seeded the same way every epoch
train_dataloader = dict(persistent_workers=False)
val_evaluator = dict(type='NormDetCocoMetric')
test_evaluator = val_evaluator
auto_scale_lr = dict(enable=True, base_batch_size=192)  # LR follows the total batch
