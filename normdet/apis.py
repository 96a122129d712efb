"""What tools/train.py and tools/test.py share: load a config with MMDetection's command-line
conventions, build its runner, evaluate and write the report.

Kept out of the scripts so that tests and notebooks call the same code:

    cfg = load_config('configs/ssdlite_dnb.py', cfg_options={'train_cfg.max_epochs': 1})
    runner = build_runner(cfg)
    runner.train()
    metrics, paths = evaluate(runner)
"""
import ast
import atexit
import contextlib
import datetime
import os
import os.path as osp
import re
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import is_distributed, is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .allocator import keep_freed_memory
from .checkpoints import LAST, find_last_checkpoint, used_work_dir
from .errors import USER_ERRORS, CheckpointError, ConfigError
from .evaluation import NormDetCocoMetric
from .io import atomic_write
from .report import build_report, write_report
from .runner import NormDetStateHook, prepare_config


class CfgOptions(DictAction):
    """MMEngine's ``--cfg-options KEY=VALUE ...`` parser, with a ConfigError naming the option
    for one without ``=`` or with unbalanced brackets (MMEngine: a bare ValueError or
    AssertionError traceback)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            key, eq, val = kv.partition('=')
            if not (eq and key):
                raise ConfigError(f'--cfg-options {kv!r}: each option is KEY=VALUE, e.g. '
                                  'train_cfg.max_epochs=12 data_root=/data/coco/')
            if val.count('(') != val.count(')') or val.count('[') != val.count(']'):
                raise ConfigError(f'--cfg-options {kv!r}: unbalanced brackets in the value; a '
                                  "list is KEY=[1,2], a tuple KEY='(128,128)' (quoted for the "
                                  'shell)')
        super().__call__(parser, namespace, values, option_string)


def parse_tool_args(parser, argv=None, *, config: bool = True):
    """Parse a tool's command line. With ``config`` (the tools that load a config), add the flags
    every such tool shares with MMDetection's (--cfg-options, --launcher, --local-rank) and export
    LOCAL_RANK as torch.distributed.launch expects. Flags are never abbreviated (argparse would
    take --show for --show-dir)."""
    parser.allow_abbrev = False
    if not config:
        return parser.parse_args(argv)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptions,
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
    cfg = read_config(path)
    cfg.launcher = launcher
    if cfg_options:
        merge_options(cfg, cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if osp.exists(cfg.work_dir) and not osp.isdir(cfg.work_dir):
        raise ConfigError(f'work dir {cfg.work_dir!r} is a file, not a folder; choose another '
                          'with --work-dir DIR')
    if launcher != 'none' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    if cfg.get('runner_type') == 'NormDetRunner':
        prepare_config(cfg)  # here rather than in the runner, so data errors surface plainly
    return cfg


def read_config(path: str) -> Config:
    """``Config.fromfile`` with a ConfigError for a config that cannot be read: a syntax error
    names the file (the config or one of its bases) and the line."""
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        # MMEngine parses the files without their names: find the one that fails
        err = _syntax_error_in(path)
        detail = (f'{err.filename}, line {err.lineno}: {err.msg}'
                  + (f': {err.text.strip()!r}' if err.text else '')) if err else str(e)
        raise ConfigError(f'syntax error in config {detail}; fix that line') from None
    except Exception as e:  # a bad _base_, a NameError, an import error in the config
        raise ConfigError(f'config {path!r} cannot be loaded: {type(e).__name__}: '
                          f'{str(e).splitlines()[0] if str(e) else ""}; fix the config') from None


def _syntax_error_in(path: str):
    """The SyntaxError of ``path`` or of one of its local ``_base_`` files, or None."""
    try:
        with open(path) as f:
            tree = ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        return e
    except OSError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_'
                                                for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return None
            for base in [bases] if isinstance(bases, str) else bases:
                found = None if '::' in base else _syntax_error_in(
                    osp.join(osp.dirname(path), base))
                if found:
                    return found
    return None


_MISSING = object()


def _lookup(cfg, key: str):
    """The value at a dotted ``--cfg-options`` key (list items by index), or _MISSING."""
    node = cfg
    for part in key.split('.'):
        if isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def merge_options(cfg: Config, options: dict) -> None:
    """Merge ``--cfg-options`` into ``cfg``; a ConfigError for a value that cannot be what the
    config holds there (a word for a number or a flag, a number for a section) or a key that
    cannot be set."""
    for key, value in options.items():
        parts = key.split('.')
        for i in range(1, len(parts)):
            above = _lookup(cfg, '.'.join(parts[:i]))
            if above is not _MISSING and not isinstance(above, (dict, list, tuple)):
                raise ConfigError(f'--cfg-options {key}: {".".join(parts[:i])} is {above!r}, not '
                                  f'a section; set it as a whole: {".".join(parts[:i])}=VALUE')
        old = _lookup(cfg, key)
        number = isinstance(old, (int, float)) and not isinstance(old, bool)
        if (number or isinstance(old, bool)) and isinstance(value, str):
            kind = 'a number' if number else 'True or False'
            raise ConfigError(f'--cfg-options {key}={value}: the config holds {kind} there '
                              f'({old!r}); give {kind}, e.g. {key}={old!r}')
        if isinstance(old, dict) and value is not None and not isinstance(value, dict):
            raise ConfigError(f'--cfg-options {key}={value}: {key} is a section of the config '
                              f'(keys {", ".join(list(old)[:5])}); set one of its keys, e.g. '
                              f'{key}.{next(iter(old), "KEY")}=...')
    try:
        cfg.merge_from_dict(options)
    except (KeyError, TypeError, IndexError) as e:
        reason = re.sub(r'(exceeds the length of list) .*', r'\1 there', str(e).strip('"'))
        raise ConfigError(f'--cfg-options {", ".join(options)}: {reason}') from None


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


def check_work_dir(work_dir: str, resume: bool, overwrite: bool) -> None:
    """Training into a work dir that holds a run's checkpoints continues it (``resume``) or
    starts over there (``overwrite``: its ``last_checkpoint`` is removed first, so that a later
    --resume never mixes the two runs); anything else would overwrite ``epoch_N.pth`` and rewind
    ``last_checkpoint`` silently, and is refused."""
    used = used_work_dir(work_dir)
    if not used or resume:
        return
    if not overwrite:
        few = ', '.join(used[:4]) + (', ...' if len(used) > 4 else '')
        raise CheckpointError(
            f'work dir {work_dir!r} already holds a training run ({few}): continue it with '
            '--resume, train into a new folder with --work-dir DIR, or start over in this one '
            'with --overwrite (its checkpoints are then replaced)')
    with contextlib.suppress(FileNotFoundError):  # every rank of a distributed run gets here
        os.remove(osp.join(work_dir, LAST))


def evaluation_dir(checkpoint: str, work_dir: str = None) -> str:
    """Where tools/test.py writes the log and the report of ``checkpoint``: ``work_dir``, or a
    folder beside the checkpoint named after it (``epoch_12.pth`` -> ``epoch_12_test/``), never
    the training run's own dir, whose report it would replace. A folder that holds the report
    of another checkpoint is refused."""
    import json

    from .report import JSON_NAME
    folder = work_dir or osp.splitext(osp.abspath(checkpoint))[0] + '_test'
    existing = osp.join(folder, JSON_NAME)
    if osp.isfile(existing):
        try:
            with open(existing) as f:
                theirs = json.load(f).get('checkpoint')
        except (OSError, ValueError, AttributeError):
            theirs = '(unreadable)'
        if theirs and osp.abspath(theirs) != osp.abspath(checkpoint):
            raise CheckpointError(
                f'{existing} is the report of another checkpoint ({theirs}); evaluating '
                f'{checkpoint} there would replace it: leave out --work-dir (the report then '
                f'goes beside the checkpoint) or choose another folder')
    return folder


def build_runner(cfg) -> Runner:
    keep_freed_memory()  # no page faults per CPU training step (normdet.allocator)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def _find(items, cls):
    return next((i for i in items if isinstance(i, cls)), None)


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
                          checkpoint=checkpoint or find_last_checkpoint(runner.work_dir),
                          data=runner.cfg.get('normdet_data'), train_world_size=train_world)
    return metrics, write_report(runner.work_dir, report)


def print_result(metrics: dict, paths: tuple) -> None:
    """The tools' last lines: the headline numbers and where the report is (rank 0 only)."""
    if is_main_process():
        print(f'\n[normdet] {summary_line(metrics)}\n[normdet] report: {paths[1]}\n'
              f'[normdet] metrics: {paths[0]}', flush=True)


def run_tool(main) -> None:
    """Run a tool's ``main``; an error in what the user gave or a run that cannot go on
    (``normdet.errors.USER_ERRORS``) prints its message (which names the problem and the fix)
    without a traceback and exits with status 1. Under ``normdet.launch`` (tools/dist_*.sh) a
    rank leaves its message to the launcher, which prints each distinct one once. A rank of a
    distributed run ends through ``exit_rank``. glibc's malloc is first set to reuse freed memory
    (``normdet.allocator``)."""
    keep_freed_memory()
    code = 0
    try:
        main()
    except USER_ERRORS as e:
        message = f'[normdet] error: {e}'
        folder = os.environ.get('NORMDET_ERROR_DIR')
        if folder and 'RANK' in os.environ:
            atomic_write(osp.join(folder, f'rank{os.environ["RANK"]}'), message)
        else:
            print(message, file=sys.stderr, flush=True)
        code = 1
    if is_distributed():
        exit_rank(code)
    if code:
        sys.exit(code)


def exit_rank(code: int) -> None:
    """End a process of a distributed run with ``code``, without the interpreter's finalisation.

    A gloo worker thread can still hold the last collective's tensors when the tool returns:
    it marks the work done (which wakes the tool) before it lets go of them, and letting go of
    a tensor Python also knew takes the GIL. If that happens while the interpreter finalises,
    the thread is ended inside C++ code that may not end it, and the process aborts
    (``terminate called without an active exception``, SIGABRT) after its work is done: about
    one 2-process CPU run in nine. The exit handlers (log files, data-loader workers) run
    first and the output is flushed, so nothing the tool wrote is lost."""
    atexit._run_exitfuncs()  # what the interpreter's exit runs first, before the finalisation
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


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
