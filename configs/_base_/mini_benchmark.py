# What the mini configs share: the embedded benchmark and its schedule, as keys of their own
# (mini_*) that each mini base puts in place (mmengine refuses a key defined by two `_base_`
# files). The benchmark is normdet.data.synthetic.PRESETS['benchmark']: 1024 train + 256 val
# synthetic images of 128 x 128 px, 6 shape classes, 1-6 objects of radius 6-40 px, distractors
# and occlusion; generated on first use into data/synthetic_coco_benchmark.
synthetic_data = 'benchmark'
mini_size = 128
mini_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(mini_size, mini_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
mini_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(mini_size, mini_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# AdamW for 16 images per GPU, scaled linearly with the total batch (auto_scale_lr); 50
# iterations of linear warm-up (FRN's paper asks for one), then cosine to 0 by epoch. The same
# for every norm; only the number of epochs differs per detector.
mini_batch = 16
mini_optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=None)
