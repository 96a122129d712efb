# What every normdet config adds to mmdet's packaged one. Only keys that mmdet's configs lack, so
# that this file can sit beside them in a `_base_` list.
custom_imports = dict(imports=['normdet'], allow_failed_imports=False)
# Prepares the config before building (normdet/runner.py): resolves the dataset (synthetic unless
# data_root or $NORMDET_DATA_ROOT names one), rewrites every BN to `norm` with its companions,
# and makes --resume exact.
runner_type = 'NormDetRunner'
norm = 'BN'  # BN, SyncBN, GN, FRN, MABN, DNB, DNC or RBN
# Arguments of normdet.convert_norm: num_groups (GN), target_batch (MABN's buffer =
# target_batch // batch per GPU), scratch (norm_eval=False, no frozen stages, no ImageNet init).
norm_options = dict(target_batch=32, scratch=True)
randomness = dict(seed=0)
