"""The evaluation level of the glue: COCO evaluation with the complete summary and per-class AP."""
from .metric import BACKENDS, NormDetCocoMetric, default_backend

__all__ = ['BACKENDS', 'NormDetCocoMetric', 'default_backend']
