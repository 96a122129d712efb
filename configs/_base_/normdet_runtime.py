# What every normdet config adds to mmdet's packaged one. Only keys that mmdet's configs lack, so
# that this file can sit beside them in a `_base_` list.
# registers normdet's layers, models, hooks, runner and metric (normdet/openmmlab/)
custom_imports = dict(imports=['normdet.openmmlab'], allow_failed_imports=False)
# Prepares the config before building (normdet/openmmlab/engine/prepare.py): resolves the
# dataset (synthetic unless data_root or $NORMDET_DATA_ROOT names one), rewrites every BN to
# `norm` with its companions, and makes --resume exact.
runner_type = 'NormDetRunner'
norm = 'BN'  # BN, SyncBN, GN, FRN, MABN, DNB, DNC or RBN (the table in normdet/norms/table.py)
# Arguments of normdet.convert_norm: placement ('all': every norm of the config; 'backbone': the
# backbone's only), target_batch (MABN's buffer = target_batch / batch per GPU, rounded up, at
# least 2), num_groups (GN), scratch (norm_eval=False, no frozen stages, no ImageNet init),
# sync_stats (MABN, DN-B, DN-C, RBN reduce their statistics over all processes), per_level
# (batch-statistics norms in heads shared across pyramid levels, RetinaNet's towers: one per
# level; False shares them).
norm_options = dict(placement='all', target_batch=32, scratch=True, per_level=True)
randomness = dict(seed=0)
# progress (normdet/openmmlab/engine/progress.py): a training line at least every 20 iterations
# (default_hooks.logger.interval, lowered to 20) or every log_interval_s seconds, whichever comes
# first; validation and testing lines with an ETA at the same rhythm
log_interval_s = 30
