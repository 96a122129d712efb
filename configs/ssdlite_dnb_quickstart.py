# The quick start: configs/ssdlite_dnb.py on a schedule that runs in a few minutes on a 2-core CPU
# (README's first command). Same model, norm, data and code path; only the schedule is short.
_base_ = './ssdlite_dnb.py'

max_epochs = 12
train_dataloader = dict(batch_size=8, num_workers=2, dataset=dict(times=1))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(enable=False)  # the LR below is meant for batch 8
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', begin=0, T_max=max_epochs, end=max_epochs, by_epoch=True,
         eta_min=0)
]
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(interval=max_epochs))
log_processor = dict(window_size=4)
