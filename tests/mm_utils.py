"""Shared helpers for the tests that use the real OpenMMLab stack."""
import os.path as osp

from mmengine.config import Config
from mmengine.utils import get_installed_path

import normdet.openmmlab  # registers normdet's classes, as a config's custom_imports does

normdet.openmmlab.register_all_modules(init_default_scope=True)
# the tests read mmengine checkpoints (torch.load, weights_only=True) as normdet's tools do
normdet.openmmlab.stack_fixes.apply()

from normdet.norms import NORMS as _TABLE  # noqa: E402

NORMS = tuple(_TABLE)  # every norm of the table: parametrisations follow it
NORMDET_NORMS = tuple(n for n, spec in _TABLE.items() if spec.layer is not None)  # normdet's layers
PACKAGED = {
    'ssdlite': 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
    'retinanet': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    'mask_rcnn': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
}


def packaged(name: str) -> Config:
    """mmdet's packaged config (``Config.fromfile`` resolves ``mmdet::`` only inside ``_base_``)."""
    rel = PACKAGED[name].split('::', 1)[1]
    return Config.fromfile(osp.join(get_installed_path('mmdet'), '.mim', 'configs', rel))


# --- the detection workflow (tools/train.py, tools/test.py) -----------------------------------
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DETECTORS = ('ssdlite', 'retinanet_r50_fpn', 'mask_rcnn_r50_fpn')
_count = itertools.count()


def config_path(detector: str, norm: str) -> str:
    return osp.join(REPO, 'configs', f'{detector}_{norm.lower()}.py')


def tool(name: str):
    """tools/<name>.py as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(f'normdet_tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pipeline_resizes(prefix: str, pipeline, size: int):
    """Options resizing every Resize of the transforms list at ``prefix`` to ``size``."""
    for i, t in enumerate(pipeline):
        if t.get('type') == 'Resize':
            yield f'{prefix}.{i}.scale=({size},{size})'


def small_options(config: str, data_root: str, size: int = 128, epochs: int = 1) -> list:
    """--cfg-options that shrink a config for CPU tests: image size, epochs, workers; the code
    path is the config's own. A unique experiment name keeps in-process runs apart."""
    cfg = Config.fromfile(config)
    name = f'test{next(_count)}_{osp.basename(config)[:-3]}'
    opts = [f'data_root={data_root}', f'train_cfg.max_epochs={epochs}', 'train_dataloader.batch_size=2',
            f'train_cfg.val_interval={epochs + 1}', f'experiment_name={name}',
            f'visualizer.name={name}', 'default_hooks.logger.interval=1']
    train = 'train_dataloader.dataset'
    dataset = cfg.train_dataloader.dataset
    if dataset.type == 'RepeatDataset':  # SSDLite: one pass over the data per epoch
        opts.append(f'{train}.times=1')
        train, dataset = train + '.dataset', dataset.dataset
    opts += list(_pipeline_resizes(f'{train}.pipeline', dataset.pipeline, size))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        opts += list(_pipeline_resizes(f'{loader}.dataset.pipeline', cfg[loader].dataset.pipeline,
                                       size))
    for i, t in enumerate(cfg.get('tta_pipeline') or []):  # tools/test.py --tta
        for j, group in enumerate(t.get('transforms') or []):
            opts += list(_pipeline_resizes(f'tta_pipeline.{i}.transforms.{j}', group, size))
    return opts


def run_cli(*args, env=None, timeout=900):
    """Run a command as a user would (a new process); returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
