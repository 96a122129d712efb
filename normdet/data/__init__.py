"""Data helpers: the embedded synthetic COCO-format dataset and COCO path/annotation checks."""
from .synthetic import CLASSES, check_coco, ensure_synthetic_coco, generate_synthetic_coco

__all__ = ['CLASSES', 'check_coco', 'ensure_synthetic_coco', 'generate_synthetic_coco']
