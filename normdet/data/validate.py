"""A COCO-format dataset checked before the first iteration: annotation files and images.

    python tools/check_data.py /data/coco/         # alone; training runs it for every split

What would break a run, or train silently on something else, is fatal and listed (at most a few
examples of each problem): ids that repeat (two images with one id: the boxes of one train on
the pixels of the other), categories with one name twice, a box that is not 4 finite numbers,
images without a positive ``width``/``height``, annotations without ``area`` (mmdet's dataset and
COCO's evaluation read it), sections, ids, references and names of the wrong type, segmentations
that are neither polygons nor RLE, an image file missing, empty, not decodable, cut short or of
another size than the file says, and a training split without one annotation to learn from (every one a
crowd region, or dropped). What mmdet drops and trains on without (an unknown category, a box of
zero size, an annotation of an image the file does not list) is counted in one warning.

The result is cached by the files' paths, sizes and modification times (the annotation file and
every image), in ``$NORMDET_CACHE/data_checks`` (default ``~/.cache/normdet``): a second run on
the same files reads no image and does not parse the annotation file again (it stats them).
"""
import hashlib
import json
import math
import os
import os.path as osp
from collections import Counter

import cv2
import numpy as np

from ..utils.errors import DataError
from ..utils.io import atomic_write

EXAMPLES = 3  # examples named per problem
VERSION = 2   # of the checks: a new version checks cached files again


def _few(found) -> str:
    """``[count, examples]`` as text."""
    n, examples = found
    return ', '.join(map(str, examples)) + (f', ... ({n} in all)' if n > len(examples) else '')


def describe(problems: dict, counted: bool = False) -> str:
    """Problem -> examples (``counted``: -> [how many, the first examples]) as one line."""
    return '; '.join(f'{k}: {_few(v)}' for k, v in
                     (problems if counted else _counted(problems)).items())


def _counted(problems: dict) -> dict:
    """problem -> [how many, the first examples]."""
    return {k: [len(v), [str(e) for e in v[:EXAMPLES]]] for k, v in problems.items()}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _repeated(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]


def dropped_by_mmdet(ann: dict, img: dict, cat_ids) -> str:
    """Why mmdet 3.3's CocoDataset drops ``ann`` (an annotation of the listed image ``img``,
    with a box of 4 numbers), as the end of 'annotations ...'; '' when it keeps it. The one place
    that says mmdet's rules: the dataset counts by it, and so does this check."""
    x, y, w, h = ann['bbox']
    if w < 1 or h < 1:
        return 'of zero or negative size'
    if ann.get('area', 1) <= 0:
        return 'whose area is zero or negative (mmdet drops them by their area field)'
    if min(x + w, img['width']) - max(x, 0) <= 0 or min(y + h, img['height']) - max(y, 0) <= 0:
        return 'entirely outside the image'
    if ann.get('category_id') not in cat_ids:
        return 'with a category id that is not one of the classes'
    return ''


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _segmentation_ok(seg) -> bool:
    """Polygons (lists of at least 3 points) or RLE (``counts`` and a 2-number ``size``), as
    mmdet's LoadAnnotations and pycocotools read them; absent counts as fine."""
    if seg is None or seg == []:
        return True
    if isinstance(seg, dict):
        size = seg.get('size')
        return (isinstance(seg.get('counts'), (str, list)) and isinstance(size, list)
                and len(size) == 2 and all(map(_integer, size)))
    return isinstance(seg, list) and all(
        isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and all(map(_number, p))
        for p in seg)


def _rle_ok(rle: dict, img: dict) -> bool:
    """An RLE mask that decodes, as mmdet decodes it, to the image's size."""
    from pycocotools import mask as mask_utils
    h, w = img['height'], img['width']
    if rle['size'] != [h, w]:
        return False
    try:
        if isinstance(rle['counts'], list):
            if sum(rle['counts']) != h * w or not all(map(_integer, rle['counts'])):
                return False
            rle = mask_utils.frPyObjects(rle, h, w)
        return mask_utils.decode(rle).shape[:2] == (h, w)
    except (ValueError, TypeError, OverflowError):
        return False


def structure_problems(ann) -> dict:
    """What makes a parsed annotation file unreadable by pycocotools and mmdet at all: sections
    that are not lists of objects, ids and references that are not integers, names that are not
    strings. Problem -> examples; the other checks assume none of these."""
    if not isinstance(ann, dict):
        return {'a file that is not a JSON object': [type(ann).__name__]}
    fatal = {}
    for section in ('images', 'annotations', 'categories'):
        items = ann.get(section)
        if not isinstance(items, list):
            fatal[f'"{section}" that is not a list'] = [type(items).__name__]
            continue
        bad = [str(i)[:40] for i in items if not isinstance(i, dict)]
        if bad:
            fatal[f'{section} entries that are not objects'] = bad
            continue
        bad = [str(i.get('id'))[:40] for i in items if not _integer(i.get('id'))]
        if bad:
            fatal[f'{section} entries whose id is missing or not an integer'] = bad
    if fatal:
        return fatal
    for key in ('image_id', 'category_id'):
        bad = [a['id'] for a in ann['annotations'] if not _integer(a.get(key))]
        if bad:
            fatal[f'annotations whose {key} is missing or not an integer'] = bad
    bad = [c['id'] for c in ann['categories'] if not isinstance(c.get('name'), str)]
    if bad:
        fatal['categories without a name (a string)'] = bad
    bad = [i['id'] for i in ann['images'] if not (isinstance(i.get('file_name'), str)
                                                  and i['file_name'])]
    if bad:
        fatal['images without a file_name'] = bad
    return fatal


def check_annotations(ann: dict, trained: bool, masks=None) -> tuple:
    """(fatal, warnings) of a parsed COCO annotation dict that ``structure_problems`` passes:
    problem -> examples. ``masks``: the split's pipeline loads instance masks (True), does not
    (False), or unknown (None: an annotation without a segmentation is then a warning)."""
    fatal, warn = {}, {}
    images, anns, cats = ann['images'], ann['annotations'], ann['categories']
    for what, items in (('image', images), ('annotation', anns), ('category', cats)):
        ids = _repeated(i['id'] for i in items)
        if ids:
            fatal[f'{what} ids used twice'] = ids
    names = _repeated(c['name'] for c in cats)
    if names:
        fatal['category names used twice'] = names
    files = _repeated(i['file_name'] for i in images)
    if files:  # each image's boxes would be paired with one picture
        fatal['file names used by two images'] = files
    sizeless = [i['id'] for i in images if not (
        _number(i.get('width')) and _number(i.get('height'))
        and i['width'] > 0 and i['height'] > 0)]
    if sizeless:
        fatal['images without a positive width and height'] = sizeless
    if trained and not images:
        fatal['no image to train on'] = ['"images" is empty']
    listed = {i['id'] for i in images}
    unsized = set(sizeless)
    sized = {i['id']: i for i in images if i['id'] not in unsized}
    cat_ids = {c['id'] for c in cats}
    trainable = 0
    for a in anns:
        box = a.get('bbox')
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(map(_number, box))):
            fatal.setdefault('boxes that are not 4 finite numbers [x, y, w, h]', []).append(
                a['id'])
            continue
        if not _number(a.get('area')):  # mmdet's dataset and COCO's evaluation both read it
            fatal.setdefault('annotations without an area (a finite number)', []).append(a['id'])
            continue
        seg_ok = _segmentation_ok(a.get('segmentation'))
        if not seg_ok:
            fatal.setdefault('annotations whose segmentation is neither polygons nor RLE',
                             []).append(a['id'])
        elif masks is not False and not a.get('segmentation') and not a.get('ignore', False):
            (fatal if masks else warn).setdefault(
                'annotations without a segmentation (a mask detector cannot train on them)',
                []).append(a['id'])
        if a['image_id'] not in listed:
            warn.setdefault('annotations of an image the file does not list', []).append(a['id'])
            continue
        img = sized.get(a['image_id'])
        if img is None:  # its image has no size: fatal above
            continue
        if seg_ok and isinstance(a.get('segmentation'), dict) and not _rle_ok(
                a['segmentation'], img):
            fatal.setdefault('RLE masks that do not decode to the image\'s height x width',
                             []).append(a['id'])
        if a.get('ignore', False):
            continue
        why = dropped_by_mmdet(a, img, cat_ids)
        if why:
            warn.setdefault(f'annotations {why}', []).append(a['id'])
        elif not a.get('iscrowd'):
            trainable += 1
    if trained and images and not trainable:
        why = [f'{sum(bool(a.get("iscrowd")) for a in anns)} crowd']
        why += [f'{len(v)} {k}' for k, v in warn.items()]
        fatal['no annotation to train on'] = [f'{len(anns)} annotation(s): ' + ', '.join(why)]
    return fatal, warn


def _cut_short(raw: bytes) -> bool:
    """A JPEG without its end marker or a PNG without its end chunk: OpenCV decodes such a file
    (the missing part grey, with a warning on stderr), so a cut-off download would train."""
    if raw[:2] == b'\xff\xd8':
        return b'\xff\xd9' not in raw[-64:]
    if raw[:8] == b'\x89PNG\r\n\x1a\n':
        return b'IEND' not in raw[-32:]
    return False


def check_images(root: str, images: list) -> dict:
    """Problem -> examples for the image files: missing, empty, not decodable, another size."""
    fatal = {}
    for info in images:
        path = osp.join(root, str(info['file_name']))
        if not osp.isfile(path):
            fatal.setdefault('image files missing', []).append(path)
            continue
        if osp.getsize(path) == 0:
            fatal.setdefault('image files empty (0 bytes)', []).append(path)
            continue
        raw = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
        if img is None or _cut_short(raw.tobytes()):
            fatal.setdefault('image files that do not decode (truncated, or not an image)',
                             []).append(path)
        elif img.shape[:2] != (info['height'], info['width']):
            fatal.setdefault('image files of another size than the annotation file says '
                             '(height x width)', []).append(
                f'{path}: {img.shape[0]}x{img.shape[1]}, file says '
                f'{info["height"]}x{info["width"]}')
    return fatal


def _stamp(paths) -> str:
    """A digest of the files' paths, sizes and modification times (missing ones included)."""
    h = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f'{osp.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
        except OSError:
            h.update(f'{osp.abspath(path)}\0missing\n'.encode())
    return h.hexdigest()


def _cache_path(ann_path: str, img_root: str, trained: bool, masks) -> str:
    """Where the check of this annotation file (as it is now) with these images is kept."""
    key = json.dumps([VERSION, trained, masks, osp.abspath(img_root),
                      _stamp([ann_path])])
    base = os.environ.get('NORMDET_CACHE', osp.join(osp.expanduser('~'), '.cache', 'normdet'))
    return osp.join(base, 'data_checks',
                    hashlib.sha256(key.encode()).hexdigest()[:24] + '.json')


def _cached(cache: str, img_root: str):
    """The kept result, if its images are still as they were (without reading the annotation
    file again: COCO's train file takes seconds to parse)."""
    if not osp.isfile(cache):
        return None
    with open(cache) as f:
        kept = json.load(f)
    if _stamp(osp.join(img_root, name) for name in kept['images']) != kept['stamp']:
        return None
    return dict(kept['result'], cached=True)


def validate_coco(data_root: str, ann_file: str, img_dir: str, *, trained: bool = False,
                  images: bool = True, masks=None) -> dict:
    """Check one split (paths as in mmdet's dataset configs). Raises a DataError listing every
    fatal problem; returns ``warnings`` (problem -> examples) and whether the result came from the
    cache. ``trained``: it must hold something to learn from; ``images``: decode every image file
    (else only the annotations); ``masks``: the split's pipeline loads instance masks (None: not
    known)."""
    ann_path = osp.join(data_root, ann_file)
    img_root = osp.join(data_root, img_dir)
    cache = _cache_path(ann_path, img_root, trained, masks) if images else None
    result = _cached(cache, img_root) if cache else None
    if result is None:
        with open(ann_path) as f:
            ann = json.load(f)  # check_coco has vouched for the JSON and its top-level keys
        fatal, warn = structure_problems(ann), {}
        listed = [] if fatal else ann['images']
        if not fatal:
            fatal, warn = check_annotations(ann, trained, masks)
        named = [i for i in listed if i.get('file_name') and _number(i.get('width'))
                 and _number(i.get('height'))]
        if images and listed and not any('ids used twice' in k for k in fatal):
            fatal.update(check_images(img_root, named))
        result = dict(file=ann_path, fatal=_counted(fatal), warnings=_counted(warn),
                      cached=False)
        if cache:
            names = [str(i.get('file_name')) for i in listed]
            atomic_write(cache, json.dumps(dict(
                result=result, images=names,
                stamp=_stamp(osp.join(img_root, name) for name in names))))
    if result['fatal']:
        raise DataError(f'{ann_path} (images in {img_root}) cannot be trained or evaluated on: '
                        + describe(result['fatal'], counted=True) + '; fix the annotation file '
                        'or the images (python tools/check_data.py DATA_ROOT lists every problem)')
    return result


def warning_line(result: dict) -> str:
    """The one line that counts what mmdet will drop, or '' when nothing."""
    warn = result['warnings']
    if not warn:
        return ''
    return (f'{result["file"]}: ' + '; '.join(f'{v[0]} {k} (e.g. {", ".join(v[1])})'
                                             for k, v in warn.items())
            + ': mmdet drops them and trains on the rest')
