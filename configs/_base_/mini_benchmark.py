# What the mini configs share: the embedded benchmark and its schedule, as keys of their own
# (mini_*) that each mini base puts in place (mmengine refuses a key defined by two `_base_`
# files). The benchmark is normdet.data.synthetic.PRESETS['benchmark']: 1024 train + 256 val
# synthetic images of 128 x 128 px, 4 shape classes, 1-6 objects of radius 8-40 px, distractors
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
# the same without the instance masks, for the box-only detectors' fast paths (the quick start)
mini_box_train_pipeline = [dict(t, with_mask=False) if t['type'] == 'LoadAnnotations' else t
                           for t in mini_train_pipeline]
mini_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(mini_size, mini_size), keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
mini_tta_pipeline = [  # tools/test.py --tta: each image and its flip, at the benchmark's size
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(mini_size, mini_size), keep_ratio=False)],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])
]
# AdamW for 16 images per GPU, scaled linearly with the total batch (auto_scale_lr); 50
# iterations of linear warm-up (FRN's paper asks for one), then cosine to 0 by epoch; 12 epochs
# (tools/sweep.py --epochs moves the cosine with the budget). The same for every norm.
mini_batch = 16
mini_epochs = 12
mini_optim_wrapper = dict(
    # fused: AdamW's one-kernel-per-parameter step, on the CPU as on CUDA (on the 2-core CPU a
    # quarter of the time of the multi-tensor `foreach` step, which the study's runs used; the
    # same update, rounded differently; docs/performance.md)
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=0.05, fused=True),
    clip_grad=None)
mini_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', begin=0, T_max=mini_epochs, end=mini_epochs, by_epoch=True,
         eta_min=0)
]
mini_train_cfg = dict(max_epochs=mini_epochs, val_interval=mini_epochs)
mini_default_hooks = dict(logger=dict(interval=16),
                          checkpoint=dict(interval=4, max_keep_ckpts=1))
mini_val_dataloader = dict(batch_size=16, num_workers=1,
                           dataset=dict(pipeline=mini_test_pipeline))
