"""Property-based tests of the error families (hypothesis): instead of one test per case, random
members of each family, drawn afresh on every run.

- **Annotation files.** A valid COCO file, edited by a random sequence of edits anywhere in it
  (a value replaced by any JSON value, a key deleted, an entry duplicated, the file cut short):
  the data check either refuses it with one ``DataError``, or passes it, and then mmdet's
  dataset loads every image and box of it through the training pipeline. Nothing in between: no
  other exception, and nothing that passes the check but breaks training.
- **Image files.** A random image file cut at a random byte, or overwritten with random bytes:
  refused, naming that file.
- **Config keys.** A random key of a real config, misspelt by a random edit: refused before
  anything is built, naming the key it resembles.
- **Signals.** SIGINT or SIGTERM at a random moment of a training run: one line and status 130
  or 143, no traceback; the same command with ``--resume`` then finishes the run.
"""
import copy
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mm_utils import REPO  # noqa: E402
from normdet.data import check_coco, generate_synthetic_coco  # noqa: E402
from normdet.data.validate import validate_coco  # noqa: E402
from normdet.utils.errors import ConfigError, DataError  # noqa: E402

TRAIN, IMGS = 'annotations/instances_train2017.json', 'train2017/'
FAST = settings(deadline=None, max_examples=int(os.environ.get("NORMDET_EXAMPLES", 60)), derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope='module')
def clean(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    generate_synthetic_coco(root, num_train=6, num_val=2, image_size=(48, 48))
    with open(osp.join(root, TRAIN)) as f:
        return root, json.load(f)


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp('work')
    before = os.environ.get('NORMDET_CACHE')
    os.environ['NORMDET_CACHE'] = str(folder / 'cache')  # the data check's cache
    yield folder
    if before is None:
        del os.environ['NORMDET_CACHE']
    else:
        os.environ['NORMDET_CACHE'] = before


def _fresh(clean, work, name):
    """A copy of the clean dataset, and no cached data check."""
    root = str(work / name)
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(clean[0], root)
    shutil.rmtree(work / 'cache', ignore_errors=True)
    return root


# any JSON value, the odd ones included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)


def _places(node, path=()):
    """Every (path, value) of a JSON tree."""
    yield path, node
    items = (node.items() if isinstance(node, dict) else enumerate(node)
             if isinstance(node, list) else ())
    for k, v in items:
        yield from _places(v, path + (k,))


@st.composite
def edited_annotations(draw, ann):
    """The annotation dict after 1-3 random edits, and the file cut at a random byte or not."""
    ann = copy.deepcopy(ann)
    ann['annotations'] = ann['annotations'][:12]  # a small file: the edits hit what matters
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p, _ in _places(ann) if p and p[0] != 'info']
        path = draw(st.sampled_from(places))
        parent = ann
        for k in path[:-1]:
            parent = parent[k]
        edit = draw(st.sampled_from(['replace', 'delete', 'duplicate', 'swap_type']))
        if edit == 'replace':
            parent[path[-1]] = draw(json_values)
        elif edit == 'delete':
            del parent[path[-1]]
        elif edit == 'duplicate' and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:  # a number as a string, a string as a number, a list as a scalar
            v = parent[path[-1]]
            parent[path[-1]] = (str(v) if isinstance(v, (int, float)) and not
                                isinstance(v, bool) else v[0] if isinstance(v, list) and v
                                else 7)
    text = json.dumps(ann)
    if draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text) - 1))]
    return text


def _load_all(root, classes):
    """What training does with the file: mmdet's dataset (normdet's), with the classes the file
    names (as normdet.data.resolve sets them), and the training pipeline over every image."""
    import normdet.openmmlab  # noqa: F401  (registers the dataset)
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(
        type='NormDetCocoDataset', data_root=root, ann_file=TRAIN, metainfo=dict(classes=classes),
        data_prefix=dict(img=IMGS), filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='Resize', scale=(32, 32), keep_ratio=False),
                  dict(type='PackDetInputs')]))
    for i in range(len(dataset)):
        out = dataset[i]
        assert out['inputs'].shape[-2:] == (32, 32)
    return len(dataset)


@pytest.mark.slow
@FAST
@given(data=st.data())
def test_an_edited_annotation_file_is_refused_or_trains(clean, work, data):
    root = _fresh(clean, work, 'edited')
    text = data.draw(edited_annotations(clean[1]))
    with open(osp.join(root, TRAIN), 'w') as f:
        f.write(text)
    try:
        cats = check_coco(root, TRAIN, IMGS)
        validate_coco(root, TRAIN, IMGS, trained=True, masks=True)
    except DataError as e:
        assert TRAIN in str(e) and '\n' not in str(e)  # one line, naming the file
        event('refused')
        return
    event('passed, then loaded')
    # passed: training must be able to read all of it
    assert _load_all(root, tuple(c['name'] for c in cats)) > 0


@pytest.mark.slow
@FAST
@given(data=st.data())
def test_a_damaged_image_is_refused_naming_it(clean, work, data):
    root = _fresh(clean, work, 'damaged')
    names = sorted(os.listdir(osp.join(root, IMGS)))
    name = data.draw(st.sampled_from(names))
    path = osp.join(root, IMGS, name)
    with open(path, 'rb') as f:
        raw = f.read()
    if data.draw(st.booleans()):  # cut short, before the JPEG's end marker
        damaged = raw[:data.draw(st.integers(0, len(raw) - 3))]
    else:
        damaged = data.draw(st.binary(min_size=1, max_size=300))
    with open(path, 'wb') as f:
        f.write(damaged)
    with pytest.raises(DataError) as e:
        check_coco(root, TRAIN, IMGS)
        validate_coco(root, TRAIN, IMGS, trained=True)
    assert name in str(e.value)


def _typo(draw, word):
    i = draw(st.integers(0, len(word) - 1))
    letter = draw(st.sampled_from('abcdefghijklmnopqrstuvwxyz_'))
    return draw(st.sampled_from([
        word[:i] + word[i + 1:],                                   # a letter left out
        word[:i] + letter + word[i:],                              # one added
        word[:i] + letter + word[i + 1:],                          # one replaced
        word[:i] + word[i + 1:i + 2] + word[i:i + 1] + word[i + 2:]]))  # two swapped


@pytest.fixture(scope='module')
def mini_cfg():
    from normdet.cli.config import load_config
    from normdet.utils.config import walk
    cfg = load_config(osp.join(REPO, 'configs', 'mini', 'ssdlite_dnb.py'), [])
    keys = []
    for node, path in walk(cfg._cfg_dict, ''):
        prefix = path.lstrip('.')
        if '[' in prefix:
            continue
        keys += [(f'{prefix}.{k}' if prefix else k, k, set(node)) for k in node
                 if isinstance(k, str) and len(k) >= 5]
    return cfg, keys


@FAST
@given(data=st.data())
def test_a_misspelt_key_is_refused_naming_the_right_one(mini_cfg, data):
    from normdet.openmmlab.engine import validate
    cfg, keys = mini_cfg
    dotted, key, siblings = data.draw(st.sampled_from(keys))
    typo = _typo(data.draw, key)
    assume(typo not in siblings and typo != key)
    wrong = dotted[:len(dotted) - len(key)] + typo
    with pytest.raises(ConfigError, match='did you mean') as e:
        validate.check_options(cfg, {wrong: 1})
    assert dotted in str(e.value) and '\n' not in str(e.value)


@pytest.mark.slow
@settings(deadline=None, max_examples=4, suppress_health_check=list(HealthCheck))
@given(sig=st.sampled_from([signal.SIGINT, signal.SIGTERM]), after=st.floats(0.0, 1.0))
def test_a_signal_at_any_moment_loses_nothing(tmp_path_factory, sig, after):
    """The signal comes between start-up and the end of a 2-epoch run (``after``: the fraction
    of a typical run's length); then ``--resume`` finishes it."""
    work = tmp_path_factory.mktemp('signal')
    cmd = [sys.executable, 'tools/train.py', 'configs/mini/ssdlite_bn.py', '--work-dir',
           str(work), '--no-eval', '--cfg-options', 'synthetic_data=tiny',
           'train_cfg.max_epochs=2', 'train_dataloader.batch_size=4',
           'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(3 + 30 * after)  # start-up takes ~10 s, the training ~20 s
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    if p.returncode != 0:  # stopped before the end (else it finished first)
        assert p.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig], err[-3000:]
        assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err[-3000:]
        assert '[normdet] interrupted (Ctrl-C)' in err or '[normdet] terminated (SIGTERM)' in err
    r = subprocess.run(cmd + ['--resume'], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert osp.isfile(work / 'epoch_2.pth')
    import torch
    state = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    assert state['meta']['epoch'] == 2


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_work_is_done_is_ignored(sig):
    """Once a tool's main has returned, everything is written: a stop signal then (seen on a
    loaded machine, arriving while the interpreter exited after a finished run) must not end
    the process as killed by it (status -2 / -15)."""
    code = ('import os, signal, sys; sys.path.insert(0, sys.argv[1])\n'
            'from normdet.cli.run import run_tool\n'
            'run_tool(lambda: None)\n'
            f'os.kill(os.getpid(), {int(sig)}); print("still here")')
    r = subprocess.run([sys.executable, '-c', code, REPO], capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, 'still here'), r.stderr[-2000:]
