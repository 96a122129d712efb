auto_scale_lr = dict(base_batch_size=16, enable=True)
backend_args = None
custom_hooks = [
    dict(_scope_='mmdet', type='NumClassCheckHook'),
    dict(
        _scope_='mmdet',
        interval=50,
        priority='VERY_LOW',
        type='CheckInvalidLossHook'),
    dict(type='NormDetStateHook'),
    dict(type='NormDetDivergenceHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'normdet',
    ])
data_preprocessor = dict(
    _scope_='mmdet',
    bgr_to_rgb=True,
    mean=[
        123.675,
        116.28,
        103.53,
    ],
    pad_size_divisor=1,
    std=[
        58.395,
        57.12,
        57.375,
    ],
    type='DetDataPreprocessor')
data_root = 'data/synthetic_coco_benchmark'
dataset_type = 'CocoDataset'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmdet',
        interval=4,
        max_keep_ckpts=1,
        type='NormDetCheckpointHook'),
    logger=dict(_scope_='mmdet', interval=16, type='NormDetLoggerHook'),
    param_scheduler=dict(_scope_='mmdet', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmdet', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmdet', type='IterTimerHook'),
    visualization=dict(_scope_='mmdet', type='DetVisualizationHook'))
default_scope = 'mmdet'
env_cfg = dict(
    cudnn_benchmark=True,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
input_size = 320
launcher = 'none'
load_from = None
log_level = 'INFO'
log_processor = dict(
    _scope_='mmdet', by_epoch=True, type='LogProcessor', window_size=50)
max_epochs = 120
mini_batch = 16
mini_box_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=False),
    dict(keep_ratio=False, scale=(
        128,
        128,
    ), type='Resize'),
    dict(prob=0.5, type='RandomFlip'),
    dict(type='PackDetInputs'),
]
mini_default_hooks = dict(
    checkpoint=dict(interval=4, max_keep_ckpts=1), logger=dict(interval=16))
mini_epochs = 12
mini_optim_wrapper = dict(
    clip_grad=None,
    optimizer=dict(fused=True, lr=0.002, type='AdamW', weight_decay=0.05))
mini_param_scheduler = [
    dict(begin=0, by_epoch=False, end=50, start_factor=0.01, type='LinearLR'),
    dict(
        T_max=12,
        begin=0,
        by_epoch=True,
        end=12,
        eta_min=0,
        type='CosineAnnealingLR'),
]
mini_size = 128
mini_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(keep_ratio=False, scale=(
        128,
        128,
    ), type='Resize'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
        ),
        type='PackDetInputs'),
]
mini_train_cfg = dict(max_epochs=12, val_interval=12)
mini_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(keep_ratio=False, scale=(
        128,
        128,
    ), type='Resize'),
    dict(prob=0.5, type='RandomFlip'),
    dict(type='PackDetInputs'),
]
mini_tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        transforms=[
            [
                dict(keep_ratio=False, scale=(
                    128,
                    128,
                ), type='Resize'),
            ],
            [
                dict(prob=1.0, type='RandomFlip'),
                dict(prob=0.0, type='RandomFlip'),
            ],
            [
                dict(type='LoadAnnotations', with_bbox=True),
            ],
            [
                dict(
                    meta_keys=(
                        'img_id',
                        'img_path',
                        'ori_shape',
                        'img_shape',
                        'scale_factor',
                        'flip',
                        'flip_direction',
                    ),
                    type='PackDetInputs'),
            ],
        ],
        type='TestTimeAug'),
]
mini_val_dataloader = dict(
    batch_size=16,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(keep_ratio=False, scale=(
            128,
            128,
        ), type='Resize'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(
            meta_keys=(
                'img_id',
                'img_path',
                'ori_shape',
                'img_shape',
                'scale_factor',
            ),
            type='PackDetInputs'),
    ]),
    num_workers=1)
model = dict(
    _scope_='mmdet',
    backbone=dict(
        init_cfg=dict(layer='Conv2d', std=0.03, type='TruncNormal'),
        norm_cfg=dict(
            eps=0.001, momentum=0.03, requires_grad=True, type='DNB'),
        norm_eval=False,
        out_indices=(
            2,
            4,
            7,
        ),
        type='MobileNetV2'),
    bbox_head=dict(
        act_cfg=dict(type='ReLU6'),
        anchor_generator=dict(
            max_sizes=[
                24,
                48,
                80,
                128,
            ],
            min_sizes=[
                12,
                24,
                48,
                80,
            ],
            ratios=[
                [
                    2,
                    3,
                ],
                [
                    2,
                    3,
                ],
                [
                    2,
                    3,
                ],
                [
                    2,
                    3,
                ],
            ],
            scale_major=False,
            strides=[
                8,
                16,
                32,
                64,
            ],
            type='SSDAnchorGenerator'),
        bbox_coder=dict(
            target_means=[
                0.0,
                0.0,
                0.0,
                0.0,
            ],
            target_stds=[
                0.1,
                0.1,
                0.2,
                0.2,
            ],
            type='DeltaXYWHBBoxCoder'),
        in_channels=(
            32,
            96,
            1280,
            256,
        ),
        init_cfg=dict(layer='Conv2d', std=0.001, type='Normal'),
        norm_cfg=dict(
            eps=0.001, momentum=0.03, requires_grad=True, type='DNB'),
        num_classes=4,
        type='NormDetSSDHead',
        use_depthwise=True),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        pad_size_divisor=1,
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='DetDataPreprocessor'),
    neck=dict(
        act_cfg=dict(type='ReLU6'),
        in_channels=(
            32,
            96,
            1280,
        ),
        init_cfg=dict(layer='Conv2d', std=0.03, type='TruncNormal'),
        l2_norm_scale=None,
        level_paddings=(1, ),
        level_strides=(2, ),
        norm_cfg=dict(
            eps=0.001, momentum=0.03, requires_grad=True, type='DNB'),
        out_channels=(
            32,
            96,
            1280,
            256,
        ),
        type='SSDNeck',
        use_depthwise=True),
    test_cfg=dict(
        max_per_img=200,
        min_bbox_size=0,
        nms=dict(iou_threshold=0.45, type='nms'),
        nms_pre=1000,
        score_thr=0.02),
    train_cfg=dict(
        allowed_border=-1,
        assigner=dict(
            gt_max_assign_all=False,
            ignore_iof_thr=-1,
            min_pos_iou=0.0,
            neg_iou_thr=0.5,
            pos_iou_thr=0.5,
            type='MaxIoUAssigner'),
        debug=False,
        neg_pos_ratio=3,
        pos_weight=-1,
        sampler=dict(type='PseudoSampler'),
        smoothl1_beta=1.0),
    type='SingleStageDetector')
norm = 'DNB'
norm_options = dict(
    num_groups=8,
    per_level=True,
    placement='all',
    scratch=True,
    target_batch=32)
normdet_data = dict(
    ann_file='annotations/instances_val2017.json',
    classes=(
        'circle',
        'square',
        'triangle',
        'star',
    ),
    root='data/synthetic_coco_benchmark',
    source='synthetic')
normdet_prepared = True
optim_wrapper = dict(
    _scope_='mmdet',
    clip_grad=None,
    constructor='NormDetOptimWrapperConstructor',
    optimizer=dict(fused=True, lr=0.002, type='AdamW', weight_decay=0.05),
    type='OptimWrapper')
param_scheduler = [
    dict(begin=0, by_epoch=False, end=50, start_factor=0.01, type='LinearLR'),
    dict(
        T_max=4,
        begin=0,
        by_epoch=True,
        end=4,
        eta_min=0,
        type='CosineAnnealingLR'),
]
randomness = dict(seed=0)
resume = False
runner_type = 'NormDetRunner'
synthetic_data = 'benchmark'
test_cfg = dict(_scope_='mmdet', type='TestLoop')
test_dataloader = dict(
    batch_size=16,
    dataset=dict(
        _scope_='mmdet',
        ann_file='annotations/instances_val2017.json',
        backend_args=None,
        data_prefix=dict(img='val2017/'),
        data_root='data/synthetic_coco_benchmark',
        metainfo=dict(classes=(
            'circle',
            'square',
            'triangle',
            'star',
        )),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(keep_ratio=False, scale=(
                128,
                128,
            ), type='Resize'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='NormDetCocoDataset'),
    drop_last=False,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(_scope_='mmdet', shuffle=False, type='DefaultSampler'))
test_evaluator = dict(
    _scope_='mmdet',
    ann_file='data/synthetic_coco_benchmark/annotations/instances_val2017.json',
    backend_args=None,
    format_only=False,
    metric='bbox',
    type='NormDetCocoMetric')
test_pipeline = [
    dict(_scope_='mmdet', type='LoadImageFromFile'),
    dict(_scope_='mmdet', keep_ratio=False, scale=(
        320,
        320,
    ), type='Resize'),
    dict(_scope_='mmdet', type='LoadAnnotations', with_bbox=True),
    dict(
        _scope_='mmdet',
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
        ),
        type='PackDetInputs'),
]
train_cfg = dict(
    _scope_='mmdet',
    max_epochs=4,
    type='NormDetEpochBasedTrainLoop',
    val_interval=4)
train_dataloader = dict(
    batch_sampler=None,
    batch_size=16,
    dataset=dict(
        _scope_='mmdet',
        dataset=dict(
            ann_file='annotations/instances_train2017.json',
            data_prefix=dict(img='train2017/'),
            data_root='data/synthetic_coco_benchmark',
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            metainfo=dict(classes=(
                'circle',
                'square',
                'triangle',
                'star',
            )),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(keep_ratio=False, scale=(
                    128,
                    128,
                ), type='Resize'),
                dict(prob=0.5, type='RandomFlip'),
                dict(type='PackDetInputs'),
            ],
            type='NormDetCocoDataset'),
        times=1,
        type='RepeatDataset'),
    num_workers=1,
    persistent_workers=False,
    sampler=dict(_scope_='mmdet', shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(_scope_='mmdet', type='LoadImageFromFile'),
    dict(_scope_='mmdet', type='LoadAnnotations', with_bbox=True),
    dict(
        _scope_='mmdet',
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        ratio_range=(
            1,
            4,
        ),
        to_rgb=True,
        type='Expand'),
    dict(
        _scope_='mmdet',
        min_crop_size=0.3,
        min_ious=(
            0.1,
            0.3,
            0.5,
            0.7,
            0.9,
        ),
        type='MinIoURandomCrop'),
    dict(_scope_='mmdet', keep_ratio=False, scale=(
        320,
        320,
    ), type='Resize'),
    dict(_scope_='mmdet', prob=0.5, type='RandomFlip'),
    dict(
        _scope_='mmdet',
        brightness_delta=32,
        contrast_range=(
            0.5,
            1.5,
        ),
        hue_delta=18,
        saturation_range=(
            0.5,
            1.5,
        ),
        type='PhotoMetricDistortion'),
    dict(_scope_='mmdet', type='PackDetInputs'),
]
tta_model = dict(
    tta_cfg=dict(max_per_img=100, nms=dict(iou_threshold=0.5, type='nms')),
    type='DetTTAModel')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        transforms=[
            [
                dict(keep_ratio=False, scale=(
                    128,
                    128,
                ), type='Resize'),
            ],
            [
                dict(prob=1.0, type='RandomFlip'),
                dict(prob=0.0, type='RandomFlip'),
            ],
            [
                dict(type='LoadAnnotations', with_bbox=True),
            ],
            [
                dict(
                    meta_keys=(
                        'img_id',
                        'img_path',
                        'ori_shape',
                        'img_shape',
                        'scale_factor',
                        'flip',
                        'flip_direction',
                    ),
                    type='PackDetInputs'),
            ],
        ],
        type='TestTimeAug'),
]
val_cfg = dict(_scope_='mmdet', type='ValLoop')
val_dataloader = dict(
    batch_size=16,
    dataset=dict(
        _scope_='mmdet',
        ann_file='annotations/instances_val2017.json',
        backend_args=None,
        data_prefix=dict(img='val2017/'),
        data_root='data/synthetic_coco_benchmark',
        metainfo=dict(classes=(
            'circle',
            'square',
            'triangle',
            'star',
        )),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(keep_ratio=False, scale=(
                128,
                128,
            ), type='Resize'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(
                meta_keys=(
                    'img_id',
                    'img_path',
                    'ori_shape',
                    'img_shape',
                    'scale_factor',
                ),
                type='PackDetInputs'),
        ],
        test_mode=True,
        type='NormDetCocoDataset'),
    drop_last=False,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(_scope_='mmdet', shuffle=False, type='DefaultSampler'))
val_evaluator = dict(
    _scope_='mmdet',
    ann_file='data/synthetic_coco_benchmark/annotations/instances_val2017.json',
    backend_args=None,
    format_only=False,
    metric='bbox',
    type='NormDetCocoMetric')
vis_backends = [
    dict(_scope_='mmdet', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmdet',
    name='visualizer',
    type='DetLocalVisualizer',
    vis_backends=[
        dict(type='NormDetLocalVisBackend'),
    ])
work_dir = 'work_dirs/study/ssdlite/mini-ssdlite_dnb_b16_s0_5b7eefd9'
