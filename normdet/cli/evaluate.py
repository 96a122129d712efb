"""The evaluation that ends tools/train.py and tools/test.py, and the lines that report it."""
from ..utils.coco_metrics import TASKS
from .report import build_report, write_report
from .run import is_main_process


def _find(items, cls):
    return next((i for i in items if isinstance(i, cls)), None)


def evaluate(runner, checkpoint: str = None, train_world_size: int = None):
    """Run the test loop (loading ``cfg.load_from`` first when set), or reuse the validation that
    ended training when it evaluated the same split with the same evaluator, and write the report
    into the work dir; ``checkpoint`` is what the report names (default: the work dir's last
    checkpoint), ``train_world_size`` the number of training processes (default: read from the
    checkpoint).
    Returns (metrics, (json_path, md_path)); the paths are None except on rank 0."""
    from ..openmmlab.engine.checkpoints import find_last_checkpoint
    from ..openmmlab.engine.hooks import NormDetStateHook
    from ..openmmlab.evaluation import NormDetCocoMetric
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
                          data=runner.cfg.get('normdet_data'), train_world_size=train_world,
                          trained=state.trained(runner) if state else {})
    return metrics, write_report(runner.work_dir, report)


def print_result(metrics: dict, paths: tuple) -> None:
    """The tools' last lines: the headline numbers and where the report is (rank 0 only)."""
    if is_main_process():
        print(f'\n[normdet] {summary_line(metrics)}\n[normdet] report: {paths[1]}\n'
              f'[normdet] metrics: {paths[0]}', flush=True)


def summary_line(metrics: dict) -> str:
    parts = []
    for task in TASKS:
        if f'coco/{task}_mAP' in metrics:
            ap = [100 * metrics.get(f'coco/{task}_{k}', float('nan'))
                  for k in ('mAP', 'mAP_50', 'mAP_75')]
            parts.append(f'{task} AP {ap[0]:.1f} (AP50 {ap[1]:.1f}, AP75 {ap[2]:.1f})')
    return '; '.join(parts) or str(metrics)
