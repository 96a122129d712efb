"""MMDetection's optional tool features: TensorBoard, --show/--show-dir and test-time
augmentation."""
import importlib.util
import os
import sys

from ..utils.errors import ConfigError


def enable_tensorboard(cfg) -> None:
    """``--tensorboard``: MMEngine's TensorboardVisBackend beside the local one, so TensorBoard
    (``tensorboard --logdir WORK_DIR``) shows the scalars (losses, LR, metrics) and the images
    that mmdet's DetVisualizationHook draws during validation (every ``interval``-th image)."""
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
    cfg.model = type(cfg.model)(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
