# The quick start (README's first command): SSDLite-MobileNetV2 with DN-B everywhere, trained
# from scratch on the embedded benchmark (configs/mini/ssdlite_dnb.py: 1024 synthetic 128 px
# images, 4 classes, 12 epochs of batch 16, AdamW with warm-up and cosine) and evaluated on its
# 256 val images. Only the logging differs: progress every 8 iterations, one checkpoint at the
# end. About 6 minutes of training on a 2-core CPU (docs/results.md has the AP-versus-time curve).
_base_ = './mini/ssdlite_dnb.py'

default_hooks = dict(logger=dict(interval=8), checkpoint=dict(interval=12))
log_processor = dict(window_size=8)
