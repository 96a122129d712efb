"""Data validation before training (normdet.data.validate), by family: annotation files and images
corrupted in each way a dataset goes wrong, at random places (several seeds); each fatal problem
is refused naming it, each that mmdet drops is counted, and a clean dataset passes (from the
cache the second time)."""
import json
import os
import random
import shutil

import cv2
import numpy as np
import pytest

from normdet.data import generate_synthetic_coco
from normdet.data.validate import validate_coco, warning_line
from normdet.utils.errors import DataError

TRAIN, VAL = 'annotations/instances_train2017.json', 'annotations/instances_val2017.json'


@pytest.fixture(scope='module')
def clean(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    generate_synthetic_coco(root, num_train=8, num_val=4, image_size=(64, 64))
    return root


@pytest.fixture
def data(clean, tmp_path, monkeypatch):
    monkeypatch.setenv('NORMDET_CACHE', str(tmp_path / 'cache'))
    root = str(tmp_path / 'coco')
    shutil.copytree(clean, root)
    return root


def _edit(root, ann_file, fn):
    path = os.path.join(root, ann_file)
    with open(path) as f:
        ann = json.load(f)
    fn(ann)
    with open(path, 'w') as f:
        json.dump(ann, f)


def _check(root, ann_file=TRAIN):
    train = ann_file == TRAIN
    return validate_coco(root, ann_file, 'train2017/' if train else 'val2017/', trained=train)


# corruption -> (annotation file, what the error or warning says); each picks its victim with rng
def dup_image_id(ann, rng):
    a, b = rng.sample(ann['images'], 2)
    b['id'] = a['id']


def dup_ann_id(ann, rng):
    a, b = rng.sample(ann['annotations'], 2)
    b['id'] = a['id']


def dup_category_name(ann, rng):
    ann['categories'][1]['name'] = ann['categories'][0]['name']


def dup_file_name(ann, rng):
    a, b = rng.sample(ann['images'], 2)
    b['file_name'] = a['file_name']


def zero_area(ann, rng):
    rng.choice(ann['annotations'])['area'] = 0


def nan_box(ann, rng):
    rng.choice(ann['annotations'])['bbox'][rng.randrange(4)] = float('nan')


def short_box(ann, rng):
    rng.choice(ann['annotations'])['bbox'] = [1, 2, 3]


def no_width(ann, rng):
    del rng.choice(ann['images'])['width']


def zero_height(ann, rng):
    rng.choice(ann['images'])['height'] = 0


def no_area(ann, rng):
    del rng.choice(ann['annotations'])['area']


def all_crowd(ann, rng):
    for a in ann['annotations']:
        a['iscrowd'] = 1


def unknown_category(ann, rng):
    rng.choice(ann['annotations'])['category_id'] = 999


def zero_box(ann, rng):
    rng.choice(ann['annotations'])['bbox'][2] = 0


def unlisted_image(ann, rng):
    rng.choice(ann['annotations'])['image_id'] = 10 ** 6


FATAL = [(dup_image_id, TRAIN, 'image ids used twice'),
         (dup_ann_id, TRAIN, 'annotation ids used twice'),
         (dup_category_name, VAL, 'category names used twice'),
         (dup_file_name, TRAIN, 'file names used by two images'),
         (nan_box, TRAIN, 'boxes that are not 4 finite numbers'),
         (short_box, VAL, 'boxes that are not 4 finite numbers'),
         (no_width, TRAIN, 'images without a positive width and height'),
         (zero_height, VAL, 'images without a positive width and height'),
         (no_area, VAL, 'annotations without an area'),
         (all_crowd, TRAIN, 'no annotation to train on')]
WARNED = [(unknown_category, 'annotations with a category id that is not one of the classes'),
          (zero_box, 'annotations of zero or negative size'),
          (zero_area, 'annotations whose area is zero or negative'),
          (unlisted_image, 'annotations of an image the file does not list')]


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('corrupt,ann_file,message', FATAL, ids=[f[0].__name__ for f in FATAL])
def test_a_broken_annotation_file_is_refused_naming_the_problem(data, corrupt, ann_file,
                                                                 message, seed):
    _edit(data, ann_file, lambda ann: corrupt(ann, random.Random(seed)))
    with pytest.raises(DataError, match=message) as e:
        _check(data, ann_file)
    assert 'tools/check_data.py' in str(e.value)


@pytest.mark.parametrize('corrupt,message', WARNED, ids=[w[0].__name__ for w in WARNED])
def test_what_mmdet_drops_is_counted(data, corrupt, message):
    _edit(data, TRAIN, lambda ann: corrupt(ann, random.Random(0)))
    line = warning_line(_check(data))
    assert line.startswith(os.path.join(data, TRAIN)) and f'1 {message}' in line


def _image(data, seed, split='train2017'):
    return os.path.join(data, split, random.Random(seed).choice(
        sorted(os.listdir(os.path.join(data, split)))))


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('damage,message', [
    ('truncate', 'do not decode'), ('text', 'do not decode'), ('empty', r'empty \(0 bytes\)'),
    ('remove', 'image files missing'), ('resize', 'of another size')])
def test_a_broken_image_is_refused_naming_the_file(data, damage, message, seed):
    path = _image(data, seed)
    if damage == 'truncate':
        with open(path, 'rb') as f:
            head = f.read()[:300]
        open(path, 'wb').write(head)
    elif damage == 'text':
        open(path, 'w').write('not an image')
    elif damage == 'empty':
        open(path, 'wb').close()
    elif damage == 'remove':
        os.remove(path)
    else:
        cv2.imwrite(path, np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(DataError, match=message) as e:
        _check(data)
    assert os.path.basename(path) in str(e.value)


def test_a_clean_dataset_passes_and_is_cached(data):
    first, again = _check(data), _check(data)
    assert not first['cached'] and again['cached'] and not first['fatal']
    os.utime(os.path.join(data, TRAIN))  # touched: checked again
    assert not _check(data)['cached']
    assert not _check(data, VAL)['warnings']


def test_the_check_counts_what_the_dataset_drops(data):
    """One rule (dropped_by_mmdet): a box outside its image and one 0.5 px wide, which mmdet 3.3
    drops, are counted as the dataset counts them."""
    def corrupt(ann):
        first, second = ann['annotations'][:2]
        first['bbox'] = [500, 500, 10, 10]   # the images are 64 px
        second['bbox'][2] = 0.5
    _edit(data, TRAIN, corrupt)
    line = warning_line(_check(data))
    assert '1 annotations entirely outside the image' in line
    assert '1 annotations of zero or negative size' in line


def test_an_image_changed_after_the_check_is_checked_again(data):
    """The cache holds while the files do: an image damaged since is found, though the
    annotation file is the same."""
    assert not _check(data)['cached'] and _check(data)['cached']
    path = _image(data, 0)
    open(path, 'w').write('not an image')
    with pytest.raises(DataError, match='do not decode'):
        _check(data)
