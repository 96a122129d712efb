# The quick start (README's first command): SSDLite-MobileNetV2 with DN-B everywhere, trained
# from scratch on the embedded benchmark (configs/mini/ssdlite_dnb.py: 1024 synthetic 128 px
# images, 4 classes, 12 epochs of batch 16, AdamW with warm-up and cosine) and evaluated on its
# 256 val images. The model and recipe are the mini config's; what differs is how it runs, to
# train in about 5 minutes on a 2-core CPU (docs/results.md has the AP-versus-time curve):
# - channels_last memory (the same model and weights: normdet's layers have channels_last CPU
#   paths; 0.84-0.92x the NCHW time of a DN-B step in two runs, docs/performance.md);
# - the images loaded in the training process (num_workers=0), without the instance masks
#   SSDLite does not use: on 2 cores handing a batch over from a worker process costs more
#   (about 27 ms for 16 images) than loading it (11 ms);
# - progress every 8 iterations, one checkpoint at the end.
_base_ = './mini/ssdlite_dnb.py'

channels_last = True
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(dataset=dict(pipeline={{_base_.mini_box_train_pipeline}})))
default_hooks = dict(logger=dict(interval=8), checkpoint=dict(interval=12))
log_processor = dict(window_size=8)
