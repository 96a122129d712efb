"""COCO evaluation with the complete COCO summary and a per-class table.

    val_evaluator = dict(type='NormDetCocoMetric', metric=['bbox', 'segm'])   # backend='auto'

mmdet's ``CocoMetric`` returns six AP numbers, evaluates AP at 1000 detections per image instead
of COCO's 100, and with ``classwise=True`` stores per-class AP under keys (``<class>_precision``)
that segm overwrites for bbox. This subclass keeps mmdet's prediction-to-JSON conversion and
runs COCOeval with COCO's standard parameters (maxDets 1, 10, 100). It returns,
for each metric ``m`` in (bbox, segm):

    m_mAP  m_mAP_50  m_mAP_75  m_mAP_s  m_mAP_m  m_mAP_l            (AP; mmdet's key names)
    m_AR@1  m_AR@10  m_AR@100  m_AR_s@100  m_AR_m@100  m_AR_l@100   (AR)

as fractions in [0, 1] (NaN where COCOeval prints -1: no ground truth of that size), and keeps
the per-class AP, AP50, AP75, APs, APm, APl in ``self.details[m]['per_class']`` (NaN where a class
has no ground truth) for the report. A model with no detection at all (early in training) scores 0
instead of aborting the evaluation.

Backend (``backend=``): 'faster-coco-eval' (faster_coco_eval's ``COCOeval_faster``: the same 12
numbers and per-class AP as pycocotools, about 7x faster on COCO-sized sets, C++ matching and
accumulation), 'pycocotools' (the reference), or 'auto' (the default): faster-coco-eval when it is
installed (tools/setup_env.sh installs it), else pycocotools. tests/test_evaluation.py checks that
both give the same numbers on the same detections.
"""
import contextlib
import importlib.util
import io
import os.path as osp
import tempfile

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation.metrics import CocoMetric
from mmengine.registry import METRICS
from mmengine.fileio import load
from mmengine.logging import MMLogger

from ...utils.coco_metrics import PER_CLASS, SUMMARY
from ...utils.errors import ConfigError

BACKENDS = ('faster-coco-eval', 'pycocotools')


def default_backend() -> str:
    """faster-coco-eval when it is installed, else pycocotools."""
    return BACKENDS[0] if importlib.util.find_spec('faster_coco_eval') else BACKENDS[1]


def per_class_ap(precision: np.ndarray, k: int) -> dict:
    """AP columns of class index ``k`` from COCOeval's precision array (iou, recall, class, area,
    maxdet); area 0 is 'all', maxdet -1 is 100 detections."""
    def mean(p):
        p = p[p > -1]
        return float(np.mean(p)) if p.size else float('nan')
    return dict(AP=mean(precision[:, :, k, 0, -1]), AP50=mean(precision[0, :, k, 0, -1]),
                AP75=mean(precision[5, :, k, 0, -1]), APs=mean(precision[:, :, k, 1, -1]),
                APm=mean(precision[:, :, k, 2, -1]), APl=mean(precision[:, :, k, 3, -1]))


@METRICS.register_module()
class NormDetCocoMetric(CocoMetric):

    def __init__(self, *args, backend: str = 'auto', **kwargs):
        super().__init__(*args, **kwargs)
        if backend not in ('auto', *BACKENDS):
            raise ConfigError(f"NormDetCocoMetric backend {backend!r}: use 'auto', "
                              + ', '.join(repr(b) for b in BACKENDS))
        if backend == BACKENDS[0] and not importlib.util.find_spec('faster_coco_eval'):
            raise ConfigError("NormDetCocoMetric backend 'faster-coco-eval' is not installed: "
                              "pip install faster-coco-eval, or backend='auto'")
        self.backend = default_backend() if backend == 'auto' else backend
        self.details = {}
        self._faster_gt = None  # (pycocotools ground truth, the same in faster_coco_eval's COCO)

    def _coco_eval(self, iou_type: str, predictions: list):
        """The backend's COCOeval on the ground truth and ``predictions`` (COCO result dicts)."""
        if self.backend == 'pycocotools':
            return COCOeval(self._coco_api, self._coco_api.loadRes(predictions), iou_type)
        from faster_coco_eval import COCO as FasterCOCO
        from faster_coco_eval import COCOeval_faster
        if self._faster_gt is None or self._faster_gt[0] is not self._coco_api:
            self._faster_gt = self._coco_api, FasterCOCO(self._coco_api.dataset)
        gt = self._faster_gt[1]
        return COCOeval_faster(gt, gt.loadRes(predictions), iou_type, print_function=print)

    def _ground_truth(self, gts, outfile_prefix):
        if self._coco_api is None:  # no annotation file: convert the ground truth (as mmdet does)
            self._coco_api = COCO(self.gt_to_coco_json(gt_dicts=gts, outfile_prefix=outfile_prefix))
        if self.cat_ids is None:
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=self.dataset_meta['classes'])
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()

    def evaluate_one(self, iou_type: str, predictions: list, logger) -> dict:
        names = [self._coco_api.load_cats(c)[0]['name'] for c in self.cat_ids]
        if iou_type == 'segm':  # mask area, not box area, decides small/medium/large
            for p in predictions:
                p.pop('bbox', None)
        if not predictions:
            logger.warning(f'{iou_type}: the model made no detection on the whole dataset; '
                           'every AP and AR is 0')
            stats = np.zeros(len(SUMMARY))
            rows = [dict(zip(PER_CLASS, [0.0] * len(PER_CLASS)), **{'class': n}) for n in names]
        else:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                coco_eval = self._coco_eval(iou_type, predictions)
                coco_eval.params.catIds, coco_eval.params.imgIds = self.cat_ids, self.img_ids
                coco_eval.params.iouThrs = self.iou_thrs
                coco_eval.evaluate()
                coco_eval.accumulate()
                coco_eval.summarize()
            logger.info(f'{iou_type}: {self.backend} summary\n{out.getvalue()}')
            stats = coco_eval.stats
            precision = coco_eval.eval['precision']
            rows = [dict(per_class_ap(precision, k), **{'class': n}) for k, n in enumerate(names)]
        self.details[iou_type] = dict(per_class=rows, num_detections=len(predictions),
                                      backend=self.backend)
        return {f'{iou_type}_{key}': float(v) if v >= 0 else float('nan')
                for key, v in zip(SUMMARY, stats)}

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        self._ground_truth(gts, outfile_prefix)
        result_files = self.results2json(preds, outfile_prefix)
        metrics = {}
        if not self.format_only:
            for metric in self.metrics:
                if metric not in ('bbox', 'segm'):
                    raise ValueError(f'NormDetCocoMetric evaluates bbox and segm, not {metric!r}; '
                                     "use mmdet's CocoMetric for proposals")
                metrics.update(self.evaluate_one(metric, load(result_files[metric]), logger))
        if tmp_dir is not None:
            tmp_dir.cleanup()
        return metrics
