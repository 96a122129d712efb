"""What tools/train.py and tools/test.py share: load a config with MMDetection's command-line
conventions, build its runner, evaluate and write the report.

Kept out of the scripts so that tests and notebooks call the same code:

    cfg = load_config('configs/ssdlite_dnb.py', cfg_options={'train_cfg.max_epochs': 1})
    runner = build_runner(cfg)
    runner.train()
    metrics, paths = evaluate(runner)
"""
import datetime
import os
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .errors import ConfigError, DataError
from .evaluation import NormDetCocoMetric
from .report import build_report, write_report
from .runner import NormDetStateHook, prepare_config


def parse_tool_args(parser, argv=None, *, config: bool = True):
    """Parse a tool's command line. With ``config`` (the tools that load a config), add the flags
    every such tool shares with MMDetection's (--cfg-options, --launcher, --local-rank) and export
    LOCAL_RANK as torch.distributed.launch expects. Flags are never abbreviated (argparse would
    take --show for --show-dir)."""
    parser.allow_abbrev = False
    if not config:
        return parser.parse_args(argv)
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. data_root=/data/coco/ '
                             'train_cfg.max_epochs=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path: str, cfg_options: dict = None, work_dir: str = None,
                launcher: str = 'none') -> Config:
    """The config at ``path`` with ``--cfg-options`` merged and the work dir decided as mmdet
    does: command line > config > work_dirs/<config name>."""
    if not osp.isfile(path):
        raise ConfigError(f'config {path!r} not found; the configs are in configs/, e.g. '
                                'configs/ssdlite_dnb.py')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    if cfg.get('runner_type') == 'NormDetRunner':
        prepare_config(cfg)  # here rather than in the runner, so data errors surface plainly
    return cfg


def init_cpu_distributed(cfg) -> None:
    """Distributed training without GPUs (gloo): MMEngine's launcher calls torch.cuda.set_device
    and wraps the model for one GPU per process, which fails on a CPU-only machine. Initialise the
    process group here (MMEngine then skips its own) and wrap the model for CPU."""
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if cfg.launcher == 'slurm' and 'RANK' not in os.environ:
        raise ConfigError('--launcher slurm without GPUs: run through tools/slurm_train.sh')
    if not torch.distributed.is_initialized():
        timeout = datetime.timedelta(seconds=dist_cfg.get('timeout', 1800))
        torch.distributed.init_process_group(backend='gloo', timeout=timeout)
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                 broadcast_buffers=False,
                                 find_unused_parameters=cfg.get('find_unused_parameters', False))


def build_runner(cfg) -> Runner:
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def _find(items, cls):
    return next((i for i in items if isinstance(i, cls)), None)


def last_checkpoint(work_dir: str):
    path = osp.join(work_dir, 'last_checkpoint')
    return open(path).read().strip() if osp.isfile(path) else None


def evaluate(runner: Runner, checkpoint: str = None, train_world_size: int = None):
    """Run the test loop (loading ``cfg.load_from`` first when set), or reuse the validation that
    ended training when it evaluated the same split with the same evaluator, and write the report
    into the work dir; ``checkpoint`` is what the report names (default: the work dir's last checkpoint),
    ``train_world_size`` the number of training processes (default: read from the checkpoint).
    Returns (metrics, (json_path, md_path)); the paths are None except on rank 0."""
    state = _find(runner.hooks, NormDetStateHook)
    cfg = runner.cfg
    if (state is not None and state.val_metrics is not None and state.val_iter == runner.iter
            and cfg.get('val_dataloader') == cfg.get('test_dataloader')
            and cfg.get('val_evaluator') == cfg.get('test_evaluator')):
        # training ended with a validation of these weights on this very split: report it
        # instead of evaluating twice (minutes on COCO)
        runner.logger.info('the last validation evaluated the final weights on the test split: '
                           'reporting it')
        metrics, evaluator = state.val_metrics, runner.val_evaluator
    else:
        metrics, evaluator = runner.test(), runner.test_evaluator
    metric = _find(evaluator.metrics, NormDetCocoMetric)
    loaded = (state.loaded if state else None) or {}
    train_world = train_world_size or loaded.get('world_size')
    if not is_main_process():
        return metrics, (None, None)
    report = build_report(runner.cfg, metrics, metric.details if metric else {},
                          checkpoint=checkpoint or last_checkpoint(runner.work_dir),
                          data=runner.cfg.get('normdet_data'), train_world_size=train_world)
    return metrics, write_report(runner.work_dir, report)


def print_result(metrics: dict, paths: tuple) -> None:
    """The tools' last lines: the headline numbers and where the report is (rank 0 only)."""
    if is_main_process():
        print(f'\n[normdet] {summary_line(metrics)}\n[normdet] report: {paths[1]}\n'
              f'[normdet] metrics: {paths[0]}', flush=True)


def run_tool(main) -> None:
    """Run a tool's ``main``; an error in what the user gave prints its message (which names the
    problem and the fix) without a traceback and exits with status 1."""
    try:
        main()
    except (ConfigError, DataError) as e:
        sys.exit(f'[normdet] error: {e}')


def summary_line(metrics: dict) -> str:
    parts = []
    for task in ('bbox', 'segm'):
        if f'coco/{task}_mAP' in metrics:
            ap = [100 * metrics.get(f'coco/{task}_{k}', float('nan'))
                  for k in ('mAP', 'mAP_50', 'mAP_75')]
            parts.append(f'{task} AP {ap[0]:.1f} (AP50 {ap[1]:.1f}, AP75 {ap[2]:.1f})')
    return '; '.join(parts) or str(metrics)


# --- MMDetection's optional tool features (tools/train.py, tools/test.py) ----------------------

def enable_tensorboard(cfg) -> None:
    """``--tensorboard``: MMEngine's TensorboardVisBackend beside the local one, so TensorBoard
    (``tensorboard --logdir WORK_DIR``) shows the scalars (losses, LR, metrics) and the images
    that mmdet's DetVisualizationHook draws during validation (every ``interval``-th image)."""
    import importlib.util
    if importlib.util.find_spec('tensorboard') is None:
        raise ConfigError('--tensorboard needs the tensorboard package (tools/setup_env.sh '
                          'installs it): pip install tensorboard')
    backends = cfg.visualizer.setdefault('vis_backends', [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    vis = (cfg.get('default_hooks') or {}).get('visualization')
    if vis is not None:
        vis['draw'] = True


def has_display() -> bool:
    """Whether windows can open: on Linux an X11 or Wayland display must be set."""
    return not sys.platform.startswith('linux') or bool(
        os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def enable_visualization(cfg, show: bool = False, wait_time: float = 2.0,
                         show_dir: str = None) -> None:
    """mmdet's ``--show`` (a window per image, ``wait_time`` seconds each) and ``--show-dir``
    (drawn images saved under the run's log folder) through its DetVisualizationHook."""
    vis = (cfg.get('default_hooks') or {}).get('visualization')
    if vis is None:
        raise ConfigError('--show and --show-dir need mmdet\'s DetVisualizationHook: '
                          "default_hooks.visualization=dict(type='DetVisualizationHook')")
    if show and not has_display():
        raise ConfigError('--show needs a display and none is set ($DISPLAY is empty); save the '
                          'drawn predictions instead with --show-dir DIR')
    vis['draw'] = True
    if show:
        vis.update(show=True, wait_time=wait_time)
    if show_dir:
        vis['test_out_dir'] = show_dir


def enable_tta(cfg) -> None:
    """mmdet's ``--tta``: wrap the model in the config's ``tta_model`` and test with its
    ``tta_pipeline`` (the SSDLite and RetinaNet bases define a horizontal-flip TTA). Call it on a
    prepared config (``load_config``), so that the norm rewrite sees the detector, not the
    wrapper."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise ConfigError(f"--tta needs {' and '.join(missing)} in the config (as mmdet's TTA "
                          'configs have them); the SSDLite and RetinaNet configs define a flip '
                          "TTA; Mask R-CNN has none (mmdet's DetTTAModel does not merge masks)")
    from mmengine.config import ConfigDict
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
