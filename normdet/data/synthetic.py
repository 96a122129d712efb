"""A deterministic synthetic dataset in COCO format, so every config runs with no download.

Layout (the standard COCO one, so switching to real COCO is only a change of ``data_root``)::

    ROOT/annotations/instances_train2017.json   ROOT/train2017/000000000001.jpg ...
    ROOT/annotations/instances_val2017.json     ROOT/val2017/...

Each image has a textured background and 2-8 objects of four classes that differ in shape
(circle, square, triangle, star), each with a random colour, size (small, medium and large in the
COCO sense) and position. Later objects occlude earlier ones: an object's mask and box are its
*visible* part, and objects less than 30 % visible are dropped. Masks are stored as compressed RLE.
Everything follows from the seed: the same arguments give byte-identical files.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..errors import DataError, DataNotFoundError

CLASSES = ('circle', 'square', 'triangle', 'star')
VERSION = 1


def _shape_mask(kind: str, h: int, w: int, cx: float, cy: float, r: float, angle: float):
    m = np.zeros((h, w), np.uint8)
    if kind == 'circle':
        cv2.circle(m, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1)
        return m
    n = dict(square=4, triangle=3, star=10)[kind]
    radii = np.full(n, r)
    if kind == 'star':
        radii[1::2] = r * 0.45
    t = angle + np.arange(n) * 2 * np.pi / n
    pts = np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], 1)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m


def _image(rng, size):
    h, w = size
    # low-frequency coloured background plus noise, so objects are not trivially separable
    base = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 12, size=(h, w, 3)).astype(np.float32)
    objects, masks = [], []
    for _ in range(int(rng.integers(2, 9))):
        label = int(rng.integers(len(CLASSES)))
        r = float(np.exp(rng.uniform(np.log(6), np.log(min(h, w) / 3))))
        cx, cy = rng.uniform(r * 0.5, w - r * 0.5), rng.uniform(r * 0.5, h - r * 0.5)
        m = _shape_mask(CLASSES[label], h, w, cx, cy, r, rng.uniform(0, 2 * np.pi))
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        img[m > 0] = colour + rng.normal(0, 6, size=(int(m.sum()), 3))
        objects.append(label)
        masks.append(m)
    # visible part = own mask minus everything drawn later
    covered = np.zeros((h, w), bool)
    visible = []
    for label, m in zip(reversed(objects), reversed(masks)):
        vis = (m > 0) & ~covered
        covered |= m > 0
        if m.sum() > 0 and vis.sum() >= 0.3 * m.sum() and vis.sum() >= 16:
            visible.append((label, vis))
    return np.clip(img, 0, 255).astype(np.uint8), visible[::-1]


def generate_synthetic_coco(root: str, num_train: int = 128, num_val: int = 32,
                            image_size=(320, 320), seed: int = 0) -> str:
    """Write the dataset under ``root`` (overwriting); returns ``root``."""
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)]
    for split, count, split_seed in (('train', num_train, seed), ('val', num_val, seed + 10 ** 6)):
        img_dir = osp.join(root, f'{split}2017')
        os.makedirs(img_dir, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = np.random.default_rng([split_seed, i])
            img, objects = _image(rng, image_size)
            image_id = i + 1
            name = f'{image_id:012d}.jpg'
            cv2.imwrite(osp.join(img_dir, name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=name, height=image_size[0],
                               width=image_size[1]))
            for label, vis in objects:
                rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                    bbox=[x, y, w, h], area=float(mask_utils.area(rle)), iscrowd=0,
                    segmentation=dict(size=rle['size'], counts=rle['counts'].decode('ascii'))))
        with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def ensure_synthetic_coco(root: str = None, **kwargs) -> str:
    """Generate the dataset on first use, or reuse it when it was made with the same arguments.

    ``root`` defaults to ``$NORMDET_SYNTHETIC_DATA`` or ``data/synthetic_coco`` in the current
    directory. Safe to call from several processes at once (the ranks of a distributed run): a
    file lock lets one of them generate while the others wait."""
    root = root or os.environ.get('NORMDET_SYNTHETIC_DATA', osp.join('data', 'synthetic_coco'))
    key = hashlib.sha256(json.dumps([VERSION, sorted(kwargs.items())]).encode()).hexdigest()[:16]
    stamp = osp.join(root, '.complete')
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (osp.isfile(stamp) and open(stamp).read() == key):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stamp)
            generate_synthetic_coco(root, **kwargs)
            with open(stamp, 'w') as f:  # written last: an interrupted generation is redone
                f.write(key)
    return root


# Annotation files larger than this (COCO's train2017 is 448 MB) get a structural check only; the
# dataset parses them anyway, and parsing twice would double start-up time and memory.
FULL_CHECK_BYTES = 256 * 2 ** 20


def check_coco(data_root: str, ann_file: str, img_dir: str):
    """Raise a clear error when a COCO-format dataset is missing or its annotation file is broken.

    Paths are relative to ``data_root`` (as in mmdet's dataset configs). Returns the annotation
    file's categories sorted by id, or None for a file too large to parse twice."""
    if not osp.isdir(data_root):
        raise DataNotFoundError(
            f'dataset root {data_root!r} does not exist: point the config at your COCO copy with '
            "--cfg-options data_root=/path/to/coco/ (it must hold annotations/ and train2017/, "
            'val2017/) or set NORMDET_DATA_ROOT, or leave both unset to use the embedded '
            'synthetic dataset')
    ann_path = osp.join(data_root, ann_file)
    if not osp.isfile(ann_path):
        raise DataNotFoundError(f'annotation file {ann_path!r} not found: COCO keeps it at '
                                f'{osp.join(data_root, "annotations", "instances_val2017.json")}'
                                ' (and train2017); check data_root and ann_file')
    size = osp.getsize(ann_path)
    if size > FULL_CHECK_BYTES:
        with open(ann_path, 'rb') as f:
            head = f.read(4096).lstrip()
            f.seek(max(size - 4096, 0))
            tail = f.read().rstrip()
        if not (head.startswith(b'{') and tail.endswith(b'}')):
            raise DataError(f'annotation file {ann_path!r} is truncated or not JSON (it does not '
                             'start with "{" and end with "}"); re-download or re-generate it')
        _check_image_folder(data_root, img_dir)
        return None
    try:
        with open(ann_path) as f:
            ann = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f'annotation file {ann_path!r} is not valid JSON ({e}); re-download or '
                         're-generate it') from e
    missing = ['a top-level object'] if not isinstance(ann, dict) else [
        k for k in ('images', 'annotations', 'categories') if k not in ann]
    if missing:
        raise DataError(f'annotation file {ann_path!r} is not in COCO format: it lacks '
                         f'{", ".join(missing)}; use instances_*.json '
                         'files')
    if not ann['categories']:
        raise DataError(f'annotation file {ann_path!r} has no categories; a COCO file lists its '
                         'classes under "categories"')
    _check_image_folder(data_root, img_dir)
    return sorted(ann['categories'], key=lambda c: c['id'])


def _check_image_folder(data_root: str, img_dir: str) -> None:
    if not osp.isdir(osp.join(data_root, img_dir)):
        raise DataNotFoundError(f'image folder {osp.join(data_root, img_dir)!r} not found; '
                                'check data_root and data_prefix')
