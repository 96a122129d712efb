"""Data helpers: the embedded synthetic COCO-format dataset, COCO path/annotation checks, and the
resolution of a config's data root."""
from .resolve import data_root_of, resolve_data
from .synthetic import CLASSES, check_coco, ensure_synthetic_coco, generate_synthetic_coco

__all__ = ['CLASSES', 'check_coco', 'data_root_of', 'ensure_synthetic_coco',
           'generate_synthetic_coco', 'resolve_data']
