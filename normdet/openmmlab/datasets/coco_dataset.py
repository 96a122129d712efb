"""mmdet's CocoDataset, which says what it drops.

mmdet 3.3's ``CocoDataset`` drops, without a word, every annotation with an unknown category id,
a box of zero or negative size, or a box entirely outside its image, and every annotation of an
image the file does not list; an annotation file with images but no annotations trains on
nothing. ``NormDetCocoDataset`` (``normdet.data.resolve_data`` puts it in place of
``CocoDataset``) keeps mmdet's rules and, when the dataset is built (before the first
iteration, for the val split too):

- logs one line per annotation file (once per process) counting what was dropped and why, with
  example annotation ids;
- raises a DataError when the file has images but no usable annotation.

The annotation files (boxes of 4 finite numbers among them) and the image files (missing, empty,
not decodable, of another size) are checked before, when the config is prepared
(``normdet.data.validate``, whose ``dropped_by_mmdet`` is the rule this dataset counts by).
"""
import collections
import logging

from mmdet.datasets import CocoDataset
from mmengine.registry import DATASETS
from mmengine.logging import print_log

from ...data.validate import dropped_by_mmdet
from ...utils.errors import DataError

_REPORTED = set()  # annotation files whose dropped annotations this process has logged


def _examples(items, n: int = 3) -> str:
    items = list(items)
    return ', '.join(str(i) for i in items[:n]) + (', ...' if len(items) > n else '')


@DATASETS.register_module()
class NormDetCocoDataset(CocoDataset):
    """``CocoDataset`` with the checks and counts of the module docstring."""

    def load_data_list(self) -> list:
        self._dropped = collections.defaultdict(list)  # reason -> annotation ids
        self._annotations = None  # annotations in the file, read while it is open
        self._used = 0  # annotations of the listed images
        data_list = super().load_data_list()
        self._report(data_list)
        return data_list

    def parse_data_info(self, raw_data_info: dict):
        if self._annotations is None:
            self._annotations = len(self.coco.anns)
        img = raw_data_info['raw_img_info']
        for ann in raw_data_info['raw_ann_info']:  # boxes of 4 numbers: normdet.data.validate
            self._used += 1
            why = '' if ann.get('ignore', False) else dropped_by_mmdet(ann, img, self.cat_ids)
            if why:
                self._dropped[why].append(f'{ann.get("id")}' + (
                    f': category {ann.get("category_id")}' if 'category' in why else ''))
        return super().parse_data_info(raw_data_info)

    def _report(self, data_list: list) -> None:
        total = self._annotations or 0
        orphans = total - self._used
        if orphans:
            self._dropped['of an image the file does not list'].extend([None] * orphans)
        dropped = sum(len(v) for v in self._dropped.values())
        if data_list and (total == 0 or dropped == total):
            raise DataError(
                f'annotation file {self.ann_file} lists {len(data_list)} images but '
                + ('no annotations' if total == 0 else f'none of its {total} annotations is usable '
                   f'({self._summary()})')
                + ': training and evaluation need instances (an instances_*.json file, not an '
                'image-info file such as image_info_test2017.json)')
        if not data_list:
            raise DataError(f'annotation file {self.ann_file} lists no images; check ann_file')
        if dropped and self.ann_file not in _REPORTED:
            _REPORTED.add(self.ann_file)
            print_log(f'{self.ann_file}: {dropped} of {total} annotations are dropped, as mmdet '
                      f'drops them: {self._summary()}; fix the annotation file to use them',
                      logger='current', level=logging.WARNING)

    def _summary(self) -> str:
        return '; '.join(f'{len(ids)} {reason}'
                         + (f' (annotation {_examples(ids)})' if ids[0] is not None else '')
                         for reason, ids in self._dropped.items())
