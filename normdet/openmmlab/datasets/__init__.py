"""The datasets' level of the glue: mmdet's CocoDataset that says what it drops."""
from .coco_dataset import NormDetCocoDataset

__all__ = ['NormDetCocoDataset']
