"""The catalogue of bad inputs and faults (issue 13, "nothing lost, nothing silent"): one case
per thing a user can get wrong or a run can suffer, through the tools as a user runs them.

Every error case asserts the one-line message (the problem and the fix), exit status 1, no
traceback, and that no file of the run was lost or overwritten (``kept``); every warning case
(data the dataset drops) that the warning is given, once; every recovery case that nothing is
lost and the run continues exactly. The tools run in this process (``tools/<name>.py``'s
``main`` through ``normdet.cli.run.run_tool``, as their ``__main__`` does) unless the case is about
the process itself (a kill). Runs are shrunk with tests/mm_utils.py's ``small_options``: 128 px,
4 images, 1-2 epochs. The distributed cases (port in use, an error printed once, exact resume
of every rank's statistics) are in tests/test_distributed.py. README.md, "Errors and
recovery", lists the cases and their count.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from mm_utils import REPO, config_path, run_cli, small_options, tool
from normdet.cli.run import run_tool
from normdet.cli.workdir import LOCK
from normdet.data import generate_synthetic_coco

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = pytest.mark.slow

SSD_BN = config_path('ssdlite', 'BN')


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return generate_synthetic_coco(str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=4,
                                   image_size=(128, 128))


def fails(capsys, name, *argv) -> str:
    """Run tools/<name>.py as its command line does; assert exit status 1 with one
    '[normdet] error:' line and no traceback; return that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_tool(lambda: tool(name).main([str(a) for a in argv]))
    err = capsys.readouterr().err
    assert e.value.code == 1, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('[normdet] error: ')]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def cli_fails(name, *argv) -> str:
    """``fails`` for tools/<name>.py run as a new process, as a user runs it."""
    r = run_cli(f'tools/{name}.py', *[str(a) for a in argv], timeout=600)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith('[normdet] error: ')]
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


def runs(name, *argv) -> None:
    tool(name).main([str(a) for a in argv])


def train_args(work_dir, data_root, *options, config=SSD_BN, epochs=1, extra=()):
    return [config, '--work-dir', work_dir, '--no-eval', *extra, '--cfg-options',
            *small_options(config, str(data_root), epochs=epochs), *options]


def snapshot(*folders) -> dict:
    """Every file under ``folders`` with its content hash (but the work dir's lock, which says
    which run holds it: normdet.cli.workdir)."""
    out = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for f in files:
                if f == LOCK:
                    continue
                path = os.path.join(root, f)
                with open(path, 'rb') as fh:
                    out[path] = hashlib.sha256(fh.read()).hexdigest()
    return out


def kept(before: dict, started: bool = False) -> None:
    """No file of ``before`` was lost or overwritten (new files, such as logs, may appear).
    ``started``: the run got as far as training, so the config dump in its work dir
    (WORK_DIR/<config>.py) describes it."""
    for path, digest in before.items():
        if started and path.endswith('.py') and os.path.dirname(path) in {
                os.path.dirname(p) for p in before if p.endswith('last_checkpoint')}:
            continue
        assert os.path.isfile(path), f'lost: {path}'
        with open(path, 'rb') as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == digest, f'overwritten: {path}'


def copy_coco(coco, tmp_path):
    return shutil.copytree(coco, tmp_path / 'coco')


def edit_annotations(root, split, fn):
    path = root / 'annotations' / f'instances_{split}2017.json'
    ann = json.loads(path.read_text())
    fn(ann)
    path.write_text(json.dumps(ann))


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def trained(coco, tmp_path_factory):
    """SSDLite-BN trained one epoch (2 iterations), with its report: the run most cases reuse
    (copy it before changing it)."""
    work = tmp_path_factory.mktemp('trained') / 'run'
    runs('train', SSD_BN, '--work-dir', work, '--cfg-options', *small_options(SSD_BN, coco))
    return work


@pytest.fixture(scope='module')
def mabn_run(coco, tmp_path_factory):
    config = config_path('ssdlite', 'MABN')
    work = tmp_path_factory.mktemp('mabn') / 'run'
    runs('train', *train_args(work, coco, config=config))
    return work


def copy_run(run, tmp_path, name='run'):
    return shutil.copytree(run, tmp_path / name)


# --- the command line and the config -----------------------------------------------------------

@pytest.mark.parametrize('name', ['train', 'test', 'deploy'])
def test_cfg_option_without_equals(name, trained, capsys):
    args = [SSD_BN] + ([trained / 'epoch_1.pth'] if name != 'train' else [])
    msg = fails(capsys, name, *args, '--cfg-options', 'train_cfg.max_epochs')
    assert "--cfg-options 'train_cfg.max_epochs': each option is KEY=VALUE" in msg


def test_cfg_option_unbalanced_brackets(capsys):
    msg = fails(capsys, 'train', SSD_BN, '--cfg-options', 'model.data_preprocessor.mean=[1,2')
    assert 'unbalanced brackets in the value' in msg and 'KEY=[1,2]' in msg


def test_cfg_option_word_for_a_number(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'train_cfg.max_epochs=two'))
    assert '--cfg-options train_cfg.max_epochs=two: the config holds a number there' in msg


def test_cfg_option_word_for_a_flag(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco,
                                             'train_dataloader.persistent_workers=maybe'))
    assert 'holds True or False there' in msg


def test_cfg_option_number_for_a_section(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'model.backbone=3'))
    assert 'model.backbone is a section of the config' in msg and 'model.backbone.type=' in msg


def test_cfg_option_key_below_a_number(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'train_cfg.max_epochs.x=1'))
    assert 'train_cfg.max_epochs is 120, not a section; set it as a whole' in msg


def test_cfg_option_list_index_out_of_range(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(
        tmp_path, coco, 'train_dataloader.dataset.dataset.pipeline.99.type=Resize'))
    assert 'Index 99 exceeds the length of list there' in msg


def write_config(tmp_path, text, name='bad.py'):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_config_syntax_error_names_file_and_line(tmp_path, capsys):
    path = write_config(tmp_path, f'''
        _base_ = '{SSD_BN}'
        norm = 'GN'
        model = dict(backbone=dict(
    ''')
    msg = fails(capsys, 'train', path)
    assert f'syntax error in config {path}, line 4' in msg and 'fix that line' in msg


def test_config_syntax_error_in_a_base(tmp_path, capsys):
    base = write_config(tmp_path, 'extra = 1\nx = (1,\n', 'base.py')
    path = write_config(tmp_path, f'_base_ = ["{SSD_BN}", "{base}"]\n')
    msg = fails(capsys, 'train', path)
    assert f'syntax error in config {base}, line ' in msg


def test_config_undefined_name(tmp_path, capsys):
    path = write_config(tmp_path, f'''
        _base_ = '{SSD_BN}'
        norm = GroupNorm
    ''')
    msg = fails(capsys, 'train', path)
    assert f'config {str(path)!r} cannot be loaded: NameError' in msg


def test_config_missing_base(tmp_path, capsys):
    path = write_config(tmp_path, "_base_ = './no_such_base.py'\n")
    msg = fails(capsys, 'train', path)
    assert 'cannot be loaded' in msg and 'no_such_base.py' in msg


@pytest.mark.parametrize('name', ['train', 'test', 'deploy'])
def test_config_not_found(name, trained, capsys):
    args = ['configs/ssdlite_nonorm.py'] + ([trained / 'epoch_1.pth'] if name != 'train' else [])
    msg = fails(capsys, name, *args)
    assert "config 'configs/ssdlite_nonorm.py' not found" in msg


@pytest.mark.parametrize('name', ['train', 'test', 'deploy'])
def test_config_is_a_folder(name, trained, capsys):
    args = ['configs/'] + ([trained / 'epoch_1.pth'] if name != 'train' else [])
    msg = fails(capsys, name, *args)
    assert "config 'configs/' is a folder, not a file" in msg


def test_config_without_a_model(tmp_path, capsys):
    msg = fails(capsys, 'train', write_config(tmp_path, "norm = 'GN'\n"))
    assert 'defines no model: inherit a detector' in msg and 'configs/_base_/ssdlite.py' in msg


def test_normdet_keys_without_normdet_runner(tmp_path, capsys):
    """A plain MMDetection config that sets norm would train mmdet's BN (and look for COCO)."""
    path = write_config(tmp_path, """
        _base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
        norm = 'GN'
    """)
    msg = fails(capsys, 'train', path, '--work-dir', tmp_path / 'w')
    assert "sets norm but does not run normdet's runner" in msg
    assert 'configs/_base_/normdet_runtime.py' in msg


@pytest.mark.parametrize('option, key', [
    ('train_cfg.max_epochs=0', 'train_cfg.max_epochs'),
    ('train_cfg.val_interval=-1', 'train_cfg.val_interval'),
    ('auto_scale_lr.base_batch_size=0', 'auto_scale_lr.base_batch_size'),
    ('default_hooks.logger.interval=0', 'default_hooks.logger.interval'),
    ('norm_options.target_batch=-32', 'norm_options.target_batch'),
    ('norm_options.num_groups=2.5', 'norm_options.num_groups')])
def test_a_count_that_is_not_a_positive_integer(option, key, coco, tmp_path, capsys):
    """0 epochs trained nothing and evaluated the untrained model as the run's result; a base
    batch of 0 divided by zero; a negative MABN target batch built a 2-iteration buffer."""
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, option))
    assert f'{key} must be a positive integer (' in msg and f'got {option.split("=")[1]}' in msg
    assert not os.listdir(tmp_path)


def test_norm_given_as_a_list(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'norm=[GN]'))
    assert "norm must be one name, one of BN, SyncBN, GN" in msg and "got ['GN']" in msg


def test_pytorch_launcher_outside_torchrun(coco, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('RANK', raising=False)
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, extra=['--launcher', 'pytorch']))
    assert '--launcher pytorch outside torchrun' in msg and 'tools/dist_train.sh' in msg


def test_deploy_names_a_model_that_cannot_be_built(capsys):
    msg = fails(capsys, 'deploy', config_path('ssdlite', 'GN'), '--size', '64', '64',
                '--cfg-options', 'norm_options.num_groups=5')
    assert 'model: cannot be built from the config' in msg and 'num_groups (5)' in msg


def test_unknown_norm(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'norm=BatchNrom'))
    assert "unknown norm 'BatchNrom'; choose one of BN, SyncBN, GN" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without GPU')
def test_amp_without_gpu(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, extra=['--amp']))
    assert '--amp (mixed precision) needs a GPU' in msg and 'without --amp' in msg
    assert not os.listdir(tmp_path)


def test_auto_scale_lr_without_base_batch(coco, tmp_path, capsys):
    path = write_config(tmp_path, f'''
        _base_ = '{SSD_BN}'
        auto_scale_lr = dict(_delete_=True, enable=False)
    ''')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', coco, config=path,
                                             extra=['--auto-scale-lr']))
    assert '--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...)' in msg


def test_resume_from_missing_checkpoint(coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco,
                                             extra=['--resume', tmp_path / 'nope.pth']))
    assert 'nope.pth: no such checkpoint' in msg


def test_work_dir_is_a_file(coco, tmp_path, capsys):
    (tmp_path / 'afile').write_text('x')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'afile', coco))
    assert 'is a file, not a folder' in msg and (tmp_path / 'afile').read_text() == 'x'


def test_slurm_launcher_outside_slurm(coco, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('RANK', raising=False)
    if torch.cuda.is_available():
        pytest.skip('the CPU path of --launcher slurm')
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, extra=['--launcher', 'slurm']))
    assert '--launcher slurm without GPUs: run through tools/slurm_train.sh' in msg


@pytest.mark.parametrize('size', ['0', '-2'])
def test_batch_size_not_positive(size, coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, f'train_dataloader.batch_size={size}'))
    assert f'train_dataloader.batch_size must be a positive integer (images per GPU), got {size}' \
        in msg


@pytest.mark.parametrize('norm', ['BN', 'SyncBN', 'MABN', 'DNB', 'DNC', 'RBN'])
def test_batch_1_with_batch_statistics(norm, coco, tmp_path, capsys):
    config = config_path('ssdlite', norm)
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, 'train_dataloader.batch_size=1',
                                             config=config))
    assert f'train_dataloader.batch_size=1 with norm {norm}' in msg
    assert 'a norm that works at batch 1: GN, FRN (--cfg-options norm=GN)' in msg
    assert not os.listdir(tmp_path)  # refused before anything was written


@pytest.mark.parametrize('norm', ['GN', 'FRN'])
def test_batch_free_norms_prepare_at_batch_1(norm, coco):
    """Not an error: the norms the message names do prepare at batch 1."""
    from normdet.cli.config import load_config
    cfg = load_config(config_path('ssdlite', norm), {'data_root': coco,
                                                     'train_dataloader.batch_size': 1})
    assert cfg.norm == norm and cfg.train_dataloader.batch_size == 1


def test_out_is_not_a_pickle(trained, tmp_path, capsys):
    msg = fails(capsys, 'test', SSD_BN, trained / 'epoch_1.pth', '--out', tmp_path / 'preds.json')
    assert '--out' in msg and 'give a .pkl path' in msg


# --- the dataset ---------------------------------------------------------------------------------

def test_data_root_missing(tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, '/no/such/coco/'))
    assert "dataset root '/no/such/coco/' does not exist" in msg and 'NORMDET_DATA_ROOT' in msg


def test_data_root_is_a_file(tmp_path, capsys):
    (tmp_path / 'coco.json').write_text('{}')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', tmp_path / 'coco.json'))
    assert 'coco.json' in msg and 'is a file, not a folder' in msg


def test_annotation_file_is_a_folder(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    (root / 'annotations' / 'instances_val2017.json').unlink()
    (root / 'annotations' / 'instances_val2017.json').mkdir()
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'instances_val2017.json' in msg and 'is a folder, not a file' in msg


def test_annotation_file_missing(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    (root / 'annotations' / 'instances_val2017.json').unlink()
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'instances_val2017.json' in msg and 'not found' in msg


def test_annotation_file_truncated(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    ann = root / 'annotations' / 'instances_train2017.json'
    ann.write_text(ann.read_text()[:500])
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert f"annotation file '{ann}' is not valid JSON" in msg and 're-download' in msg


def test_annotation_file_not_coco(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    (root / 'annotations' / 'instances_train2017.json').write_text('{"images": []}')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'is not in COCO format: it lacks annotations, categories' in msg


def test_annotation_file_without_categories(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    edit_annotations(root, 'train', lambda a: a.update(categories=[]))
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'has no categories' in msg


def test_image_folder_missing(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    shutil.rmtree(root / 'val2017')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'val2017' in msg and 'not found' in msg


def test_splits_disagree_on_classes(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    edit_annotations(root, 'val', lambda a: a['categories'].append(
        dict(id=9, name='hexagon', supercategory='shape')))
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'disagree on the classes' in msg and 'hexagon' in msg


@pytest.mark.parametrize('split', ['train', 'val'])
def test_images_but_no_annotations(split, coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    edit_annotations(root, split, lambda a: a.update(annotations=[]))
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    if split == 'train':  # found by the data check before anything is built
        assert 'no annotation to train on: 0 annotation(s)' in msg
    else:
        assert f'instances_{split}2017.json lists 4 images but no annotations' in msg
        assert 'need instances' in msg
    assert not (tmp_path / 'w' / 'epoch_1.pth').exists()


def test_no_usable_annotation(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    edit_annotations(root, 'train', lambda a: [x.update(category_id=99) for x in a['annotations']])
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'no annotation to train on' in msg and \
        'annotations with a category id that is not one of the classes' in msg


def test_annotation_without_a_box(coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    edit_annotations(root, 'train', lambda a: a['annotations'][0].update(bbox=[1, 2, 3]))
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert 'boxes that are not 4 finite numbers [x, y, w, h]' in msg


@pytest.mark.parametrize('split', ['train', 'val'])
def test_zero_byte_image(split, coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    (root / f'{split}2017' / '000000000002.jpg').write_bytes(b'')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert f'image files empty (0 bytes): {root / split}2017/000000000002.jpg' in msg
    assert not (tmp_path / 'w' / 'epoch_1.pth').exists()  # found before training


@pytest.mark.parametrize('split', ['train', 'val'])
def test_missing_image_found_before_training(split, coco, tmp_path, capsys):
    root = copy_coco(coco, tmp_path)
    (root / f'{split}2017' / '000000000003.jpg').unlink()
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', root))
    assert f'image files missing: {root}/{split}2017/000000000003.jpg' in msg
    assert not (tmp_path / 'w' / 'epoch_1.pth').exists()  # before training, not after it
    assert not list((tmp_path / 'w').glob('*/vis_data/scalars.json'))  # no iteration logged


@pytest.fixture(scope='module')
def faulty_run(coco, tmp_path_factory):
    """Training on annotations with every silent fault mmdet drops: the log of the run."""
    root = shutil.copytree(coco, tmp_path_factory.mktemp('faulty') / 'coco')

    def faults(ann):
        good = ann['annotations'][0]
        new = lambda i, **kw: dict(good, id=1000 + i, **kw)  # noqa: E731
        ann['annotations'] += [
            new(1, category_id=77),                      # unknown category id
            new(2, bbox=[10, 10, 0, 20]),                # zero width
            new(3, bbox=[10, 10, 20, -5]),               # negative height
            new(4, bbox=[500, 500, 20, 20]),             # outside the 128 px image
            new(5, image_id=999),                        # an image the file does not list
        ]
    edit_annotations(root, 'train', faults)
    work = tmp_path_factory.mktemp('faulty') / 'run'
    runs('train', *train_args(work, root))
    assert (work / 'epoch_1.pth').is_file()  # a warning, not an error: training ran
    return next(work.glob('*/*.log')).read_text()


@pytest.mark.parametrize('shown', [
    pytest.param('1 with a category id that is not one of the classes (annotation 1001: '
                 'category 77)', id='unknown-category-id'),
    pytest.param('of zero or negative size (annotation 1002, ', id='zero-size-box'),
    pytest.param('of zero or negative size (annotation 1002, 1003)', id='negative-size-box'),
    pytest.param('1 entirely outside the image (annotation 1004)', id='box-outside-the-image'),
    pytest.param('1 of an image the file does not list', id='annotation-of-an-unlisted-image'),
])
def test_dropped_annotations_are_counted_once(shown, faulty_run):
    lines = [line for line in faulty_run.splitlines() if 'annotations are dropped' in line]
    assert len(lines) == 1, lines  # once, at start-up (the val split has none)
    assert 'instances_train2017.json: 5 of ' in lines[0] and shown in lines[0], lines[0]
    assert 'fix the annotation file' in lines[0]


# --- checkpoints: reading, fitting -------------------------------------------------------------

def empty_checkpoint(tmp_path):
    path = tmp_path / 'empty.pth'
    path.write_bytes(b'')
    return path


@pytest.mark.parametrize('name', ['test', 'deploy'])
def test_zero_byte_checkpoint(name, tmp_path, capsys):
    path = empty_checkpoint(tmp_path)
    msg = fails(capsys, name, SSD_BN, path)
    assert f"checkpoint '{path}' is empty (0 bytes)" in msg and 'copy it again' in msg


def test_zero_byte_checkpoint_to_resume(coco, tmp_path, capsys):
    path = empty_checkpoint(tmp_path)
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', coco, extra=['--resume', path]))
    assert f"checkpoint '{path}' is empty (0 bytes)" in msg


def test_zero_byte_last_checkpoint(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / 'epoch_1.pth').write_bytes(b'')  # e.g. a copy of the work dir that stopped short
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, extra=['--resume']))
    assert 'epoch_1.pth' in msg and 'is empty (0 bytes)' in msg
    kept(before)


def test_truncated_checkpoint(trained, tmp_path, capsys):
    path = tmp_path / 'cut.pth'
    data = (trained / 'epoch_1.pth').read_bytes()
    path.write_bytes(data[:len(data) // 2])
    msg = fails(capsys, 'test', SSD_BN, path)
    assert f"checkpoint '{path}' is truncated or not a PyTorch checkpoint" in msg


def test_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / 'notes.pth'
    path.write_text('{"this": "is json"}')
    msg = fails(capsys, 'test', SSD_BN, path)
    assert 'is truncated or not a PyTorch checkpoint' in msg


def test_load_from_a_text_file(coco, tmp_path, capsys):
    """A text file's bytes are no pickle: the message says so, and does not invite an unsafe
    torch.load(weights_only=False) as it did for it."""
    path = tmp_path / 'notes.md'
    path.write_text('# my notes\n')
    msg = fails(capsys, 'train', *train_args(tmp_path / 'w', coco, f'load_from={path}'))
    assert 'is not a PyTorch checkpoint' in msg and 'weights_only=False' not in msg


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_checkpoint_is_refused(tmp_path, capsys):
    path, marker = tmp_path / 'evil.pth', tmp_path / 'pwned'
    torch.save(dict(state_dict={}, x=_RunsCode(marker)), path)
    msg = fails(capsys, 'test', SSD_BN, path)
    assert 'was refused: it holds more than weights' in msg and 'trust its source' in msg
    assert not marker.exists()


@pytest.mark.parametrize('name', ['test', 'deploy'])
def test_checkpoint_not_found(name, tmp_path, capsys):
    msg = fails(capsys, name, SSD_BN, tmp_path / 'nope.pth')
    assert 'nope.pth' in msg and 'not found' in msg


@pytest.mark.parametrize('name', ['test', 'deploy'])
def test_checkpoint_is_a_folder(name, tmp_path, capsys):
    msg = fails(capsys, name, SSD_BN, tmp_path)
    assert f"checkpoint '{tmp_path}' is a folder, not a file" in msg


@pytest.fixture(scope='module')
def retinanet_weights(tmp_path_factory, coco):
    """RetinaNet-BN's initial weights as a checkpoint: a model that is not SSDLite."""
    from mmdet.registry import MODELS
    from normdet.cli.config import load_config
    cfg = load_config(config_path('retinanet_r50_fpn', 'BN'), {'data_root': coco})
    path = tmp_path_factory.mktemp('retina') / 'retinanet.pth'
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), path)
    return path


@pytest.mark.parametrize('name', ['test', 'deploy'])
def test_retinanet_weights_into_ssdlite(name, retinanet_weights, coco, tmp_path, capsys):
    msg = fails(capsys, name, SSD_BN, retinanet_weights, '--cfg-options', f'data_root={coco}',
                *(['--work-dir', tmp_path] if name == 'test' else []))
    assert 'does not fit the model of this config: keys' in msg
    assert 'missing (backbone.' in msg and 'unexpected (backbone.' in msg
    assert 'Use the config it was trained with' in msg
    assert not (tmp_path / 'coco_metrics.json').exists()


@pytest.mark.parametrize('name', ['test', 'deploy'])
def test_mabn_weights_into_dnb(name, mabn_run, coco, tmp_path, capsys):
    args = (config_path('ssdlite', 'DNB'), mabn_run / 'epoch_1.pth', '--cfg-options',
            f'data_root={coco}', *(['--work-dir', tmp_path] if name == 'test' else []))
    # deploy.py as a new process: the checkpoint is read as a fresh process reads it
    msg = fails(capsys, name, *args) if name == 'test' else cli_fails(name, *args)
    assert 'does not fit the model of this config' in msg and '.mabn.' in msg
    assert not (tmp_path / 'coco_metrics.json').exists()


def test_resume_with_another_model(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, config=config_path('ssdlite', 'GN'),
                                             epochs=2, extra=['--resume']))
    assert 'does not fit the model of this config' in msg and '.gn.' in msg
    kept(before)


def test_mabn_resume_with_another_batch(mabn_run, coco, tmp_path, capsys):
    run = copy_run(mabn_run, tmp_path)
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, 'train_dataloader.batch_size=4',
                                             config=config_path('ssdlite', 'MABN'), epochs=2,
                                             extra=['--resume']))
    assert 'was trained with 2 images per GPU, whose MABN ring buffers span 16 iterations' in msg
    assert "with this run's 4 they span 8, and loading would reset them" in msg
    assert 'train_dataloader.batch_size=2' in msg and 'norm_options.batch_per_gpu=2' in msg
    kept(before)


def test_mabn_resume_with_another_batch_keeping_buffers(mabn_run, coco, tmp_path):
    """The second fix the message names works: the buffers are kept, the batch changes."""
    run = copy_run(mabn_run, tmp_path)
    old = weights(run / 'epoch_1.pth')['state_dict']
    runs('train', *train_args(run, coco, 'train_dataloader.batch_size=4',
                              'norm_options.batch_per_gpu=2', config=config_path('ssdlite', 'MABN'),
                              epochs=2, extra=['--resume']))
    new = weights(run / 'epoch_2.pth')
    key = next(k for k in old if k.endswith('x2_buffer'))
    assert new['state_dict'][key].shape == old[key].shape == (16, old[key].shape[1])
    assert new['meta']['iter'] == 3  # 2 iterations of batch 2, then 1 of batch 4
    assert new['state_dict'][key.replace('x2_buffer', 'iters')] == 3


# --- tools/test.py's report ----------------------------------------------------------------------

def test_test_report_goes_beside_the_checkpoint(trained, coco, tmp_path):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    runs('test', SSD_BN, run / 'epoch_1.pth', '--cfg-options', *small_options(SSD_BN, coco))
    kept(before)  # the training report, its config and log stay as they were
    report = json.loads((run / 'epoch_1_test' / 'coco_metrics.json').read_text())
    assert report['checkpoint'] == str(run / 'epoch_1.pth')
    assert (run / 'epoch_1_test' / 'coco_report.md').is_file()


def test_test_report_of_another_checkpoint_is_kept(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    shutil.copy(run / 'epoch_1.pth', run / 'other.pth')
    before = snapshot(run)
    msg = fails(capsys, 'test', SSD_BN, run / 'other.pth', '--work-dir', run)
    assert f"{run / 'coco_metrics.json'} is the report of another checkpoint" in msg
    assert 'leave out --work-dir' in msg
    kept(before)


# --- work dirs and resuming -------------------------------------------------------------------

def test_training_into_a_used_work_dir(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco))
    assert 'already holds a training run (epoch_1.pth, last_checkpoint)' in msg
    assert '--resume' in msg and '--work-dir DIR' in msg and '--overwrite' in msg
    kept(before)


def test_overwrite_starts_over(trained, coco, tmp_path):
    run = copy_run(trained, tmp_path)
    old = (run / 'epoch_1.pth').read_bytes()
    runs('train', *train_args(run, coco, 'randomness.seed=1', extra=['--overwrite']))
    assert (run / 'epoch_1.pth').read_bytes() != old  # replaced, as asked
    assert (run / 'last_checkpoint').read_text() == 'epoch_1.pth'


def test_resume_without_last_checkpoint_but_checkpoints(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / 'last_checkpoint').unlink()
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, epochs=2, extra=['--resume']))
    assert 'holds checkpoints (epoch_1.pth) but no last_checkpoint' in msg
    assert f"--resume {run / 'epoch_1.pth'}" in msg
    kept(before)


def test_last_checkpoint_names_a_missing_file(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / 'last_checkpoint').write_text('/elsewhere/epoch_7.pth')
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, epochs=2, extra=['--resume']))
    assert 'names /elsewhere/epoch_7.pth, which does not exist' in msg
    assert f"--resume {run / 'epoch_1.pth'}" in msg
    kept(before)


def test_last_checkpoint_empty(trained, coco, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / 'last_checkpoint').write_text('')
    msg = fails(capsys, 'train', *train_args(run, coco, epochs=2, extra=['--resume']))
    assert 'last_checkpoint is empty' in msg


def test_last_checkpoint_is_relative(trained):
    assert (trained / 'last_checkpoint').read_text() == 'epoch_1.pth'


@pytest.mark.parametrize('layout', ['relative', 'absolute (older normdet)'])
def test_moved_work_dir_resumes(layout, trained, coco, tmp_path):
    run = copy_run(trained, tmp_path, 'moved')
    if layout != 'relative':
        (run / 'last_checkpoint').write_text(str(trained.parent / 'gone' / 'epoch_1.pth'))
    runs('train', *train_args(run, coco, epochs=2, extra=['--resume']))
    ckpt = weights(run / 'epoch_2.pth')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4  # continued, not restarted
    assert (run / 'last_checkpoint').read_text() == 'epoch_2.pth'


def test_resume_in_an_empty_work_dir_says_so(coco, tmp_path):
    runs('train', *train_args(tmp_path, coco, extra=['--resume']))
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert f'--resume: no checkpoint in {tmp_path} yet (no last_checkpoint): training from the ' \
           'start' in log
    assert (tmp_path / 'epoch_1.pth').is_file()


# --- saving: full disk, kills, leftovers ---------------------------------------------------------

def _fail_writing(monkeypatch, prefix):
    """Make the atomic write of files named ``prefix``* fail as a full disk does."""
    import errno
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith(f'.{prefix}'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(os, 'fsync', fsync)


@pytest.mark.parametrize('target', ['epoch_2.pth', 'last_checkpoint'])
def test_full_disk_during_save(target, trained, coco, tmp_path, monkeypatch, capsys):
    run = copy_run(trained, tmp_path)
    before = snapshot(run)
    _fail_writing(monkeypatch, target)
    msg = fails(capsys, 'train', *train_args(run, coco, epochs=2, extra=['--resume']))
    assert f'could not write {run / target}: No space left on device; nothing was lost' in msg
    assert 'epoch_1.pth (the previous checkpoint) is intact and last_checkpoint still names it' \
        in msg and 'continue with --resume' in msg
    kept(before, started=True)
    assert not list(run.glob('.*.tmp'))


def test_full_disk_at_the_first_save(coco, tmp_path, monkeypatch, capsys):
    _fail_writing(monkeypatch, 'epoch_1.pth')
    msg = fails(capsys, 'train', *train_args(tmp_path, coco))
    assert 'No space left on device' in msg and 'no checkpoint had been written yet' in msg
    assert not (tmp_path / 'last_checkpoint').exists()


def test_previous_best_checkpoint_kept_until_the_new_one_is_written(coco, tmp_path, monkeypatch,
                                                                     capsys):
    """MMEngine removes the previous best checkpoint, then writes the new one: a full disk (or
    a kill) in between left none. The real hook of a real runner, given two validations."""
    from normdet.openmmlab import build_runner
    from normdet.cli.config import load_config
    from normdet.openmmlab.engine.checkpoints import NormDetCheckpointHook
    options = tool('train').parse_args([str(a) for a in train_args(
        tmp_path, coco, 'default_hooks.checkpoint.save_best=coco/bbox_mAP')]).cfg_options
    runner = build_runner(load_config(SSD_BN, options, str(tmp_path)))
    hook = next(h for h in runner.hooks if isinstance(h, NormDetCheckpointHook))
    hook.before_train(runner)

    def validated(epoch, ap):  # a better validation each epoch
        runner.train_loop._epoch = epoch
        hook.after_val_epoch(runner, {'coco/bbox_mAP': ap})
        return sorted(p.name for p in tmp_path.glob('best_*.pth'))
    assert validated(0, 0.1) == ['best_coco_bbox_mAP_epoch_0.pth']
    assert validated(1, 0.2) == ['best_coco_bbox_mAP_epoch_1.pth']  # the old one went after
    _fail_writing(monkeypatch, 'best_')
    with pytest.raises(SystemExit) as e:
        run_tool(lambda: validated(2, 0.3))
    assert e.value.code == 1
    assert 'could not write the best checkpoint into' in capsys.readouterr().err
    assert validated(2, 0.0) == ['best_coco_bbox_mAP_epoch_1.pth']  # kept


KILL_DURING_SAVE = '''
import os, runpy, signal, sys
real = os.fsync
def fsync(fd):  # SIGKILL while epoch_2.pth is being written (its temporary file is complete)
    if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.epoch_2.pth.'):
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd)
os.fsync = fsync
sys.argv = ['tools/train.py', *sys.argv[1:]]
runpy.run_path('tools/train.py', run_name='__main__')
'''


@pytest.fixture(scope='module')
def killed_during_save(coco, tmp_path_factory):
    """A run with max_keep_ckpts=1 killed (SIGKILL) while it saves epoch 2."""
    work = tmp_path_factory.mktemp('killed') / 'run'
    r = subprocess.run([sys.executable, '-c', KILL_DURING_SAVE,
                        *train_args(work, coco, 'default_hooks.checkpoint.max_keep_ckpts=1',
                                    epochs=2)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == -9, r.stderr[-3000:]
    return work


def test_killed_save_keeps_the_previous_checkpoint(killed_during_save):
    run = killed_during_save
    assert weights(run / 'epoch_1.pth')['meta']['epoch'] == 1  # not deleted before the new one
    assert (run / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert not (run / 'epoch_2.pth').exists()
    assert len(list(run.glob('.epoch_2.pth.*.tmp'))) == 1  # what the kill left


def test_leftovers_are_removed_on_resume(killed_during_save, coco, tmp_path):
    run = copy_run(killed_during_save, tmp_path)
    runs('train', *train_args(run, coco, 'default_hooks.checkpoint.max_keep_ckpts=1', epochs=2,
                              extra=['--resume']))
    assert not list(run.glob('.*.tmp'))
    assert sorted(p.name for p in run.glob('*.pth')) == ['epoch_2.pth']  # max_keep_ckpts=1
    log = sorted(run.glob('*/*.log'))[-1].read_text()
    assert 'removed 1 temporary file(s) of interrupted saves: .epoch_2.pth.' in log


# --- divergence ----------------------------------------------------------------------------------

HUGE_LR = 'optim_wrapper.optimizer.lr=1e35'  # NaN at the second iteration


@pytest.mark.parametrize('norm', ['BN', 'GN', 'FRN', 'MABN'])
def test_divergence_stops_at_the_first_nan(norm, coco, tmp_path, capsys):
    msg = fails(capsys, 'train', *train_args(tmp_path, coco, HUGE_LR,
                                             config=config_path('ssdlite', norm)))
    assert msg.startswith('[normdet] error: training diverged at iteration 2 (epoch 1): ')
    assert 'non-finite' in msg and 'no checkpoint was written before it' in msg
    assert 'Clip gradients (--cfg-options optim_wrapper.clip_grad.max_norm=10)' in msg
    assert 'lower learning rate' in msg and 'warm-up' in msg and 'fp32' in msg
    assert not list(tmp_path.glob('*.pth')) and not (tmp_path / 'last_checkpoint').exists()


def test_divergence_keeps_the_last_finite_checkpoint(coco, tmp_path, capsys):
    """Epoch 1 trains, epoch 2 (its learning rate x 1e35) diverges: epoch_1.pth stays the resume
    point, and no non-finite checkpoint is written."""
    config = write_config(tmp_path, f'''
        _base_ = '{SSD_BN}'
        param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=1e35)]
    ''', 'blows_up.py')
    run = tmp_path / 'run'
    msg = fails(capsys, 'train', *train_args(run, coco, config=config, epochs=2))
    assert 'training diverged at iteration 4 (epoch 2): the loss is nan (non-finite)' in msg
    assert f"the last finite checkpoint, {run / 'epoch_1.pth'}, stays the resume point" in msg
    assert "which --resume does not take (it restores the checkpoint's)" in msg
    assert not (run / 'epoch_2.pth').exists()
    assert (run / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert all(torch.isfinite(v).all() for v in weights(run / 'epoch_1.pth')['state_dict'].values()
               if v.is_floating_point())


FLAG_HOOK = '''
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FlagFirstFRNHook(Hook):
    """After each iteration, clears the first FRN's "all finite" flag, as a layer that saw NaN
    statistics does (normdet.layers._checks.nonfinite_layers reads it)."""
    priority = 'ABOVE_NORMAL'  # before NormDetDivergenceHook

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        name, layer = next((n, m) for n, m in runner.model.named_modules()
                           if type(m).__name__ == 'FRN')
        layer._finite = torch.tensor(False)
        print('flagged', name)
'''


def test_divergence_names_the_layers(coco, tmp_path, monkeypatch, capsys):
    (tmp_path / 'flag_frn_hook.py').write_text(FLAG_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(tmp_path, f'''
        _base_ = '{config_path('ssdlite', 'FRN')}'
        custom_imports = dict(imports=['normdet', 'flag_frn_hook'], allow_failed_imports=False)
        custom_hooks = [dict(type='FlagFirstFRNHook')]
    ''', 'flagged.py')
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_tool(lambda: runs('train', *train_args(tmp_path / 'run', coco, config=config)))
    out = capsys.readouterr()
    assert e.value.code == 1 and 'Traceback' not in out.err
    name = next(line.split()[1] for line in out.out.splitlines() if line.startswith('flagged '))
    msg = next(line for line in out.err.splitlines() if line.startswith('[normdet] error: '))
    assert 'training diverged at iteration 1 (epoch 1): the loss is finite but layer ' \
           f'statistics are not (non-finite); non-finite statistics in 1 layer(s): {name}.' in msg
    assert not (tmp_path / 'run' / 'epoch_1.pth').exists()


# --- resuming from an iteration checkpoint -----------------------------------------------------

ITER_CKPT = ('default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.interval=1')


@pytest.fixture(scope='module')
def iteration_run(coco, tmp_path_factory):
    """2 epochs of 2 iterations, a checkpoint after every iteration."""
    work = tmp_path_factory.mktemp('iters') / 'run'
    runs('train', *train_args(work, coco, *ITER_CKPT, epochs=2))
    return work


def test_iteration_checkpoint_resumes_at_the_next_batch(iteration_run, coco, tmp_path):
    """Killed after iteration 3 (mid epoch 2): --resume trains iteration 4 only, to the weights
    of the uninterrupted run (MMEngine's loop trained the whole epoch again: 5 iterations)."""
    run = copy_run(iteration_run, tmp_path)
    (run / 'iter_4.pth').unlink()
    (run / 'last_checkpoint').write_text('iter_3.pth')
    runs('train', *train_args(run, coco, *ITER_CKPT, epochs=2, extra=['--resume']))
    assert sorted(p.name for p in run.glob('*.pth')) == [f'iter_{i}.pth' for i in (1, 2, 3, 4)]
    a, b = weights(iteration_run / 'iter_4.pth'), weights(run / 'iter_4.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert torch.equal(sa['momentum_buffer'], sb['momentum_buffer'])


def test_iteration_checkpoint_with_another_batch_is_refused(iteration_run, coco, tmp_path, capsys):
    run = copy_run(iteration_run, tmp_path)
    (run / 'last_checkpoint').write_text('iter_3.pth')
    before = snapshot(run)
    msg = fails(capsys, 'train', *train_args(run, coco, *ITER_CKPT, 'train_dataloader.batch_size=4',
                                             epochs=2, extra=['--resume']))
    assert 'the checkpoint was saved inside epoch 2, after its batch 1, with 2 images per GPU x ' \
           '1 process(es); this run has 4 x 1' in msg
    assert 'train_dataloader.batch_size=2' in msg
    kept(before)
