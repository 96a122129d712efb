"""What normdet's command-line tools share, in small modules, one job each:

- ``stack``: the check of the installed stack, run before anything imports mmdet;
- ``args``: the flags every tool that loads a config shares with MMDetection's;
- ``config``: loading a config (merge the options, decide the work dir, prepare it once);
- ``distributed``: a process group over gloo where there is no GPU;
- ``workdir``: what a run may write where (no run silently replaces another's checkpoints);
- ``evaluate``: the evaluation that ends training or testing, and its report;
- ``report``: the per-run COCO report (``coco_metrics.json``, ``coco_report.md``);
- ``features``: MMDetection's optional tool features (TensorBoard, --show, TTA);
- ``run``: how a tool ends: one line for a user's error, and a rank's exit;
- ``launch``: torchrun for tools/dist_*.sh, with each failure said once;
- ``schedule``: changing an epoch-based config's length with its LR schedule.

``args``, ``config``, ``workdir`` and ``evaluate`` use the OpenMMLab stack through
``normdet.openmmlab``, imported when they are called; the others import nothing of it (the stack
check above all, which must run before mmdet is imported).
"""
