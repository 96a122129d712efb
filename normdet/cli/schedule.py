"""Change an epoch-based config's length without leaving its LR schedule behind.

``train_cfg.max_epochs=N`` alone leaves a cosine schedule whose ``T_max``/``end`` still say the
config's own length, so a shortened run never anneals and a longer one ends at LR 0 early.
:func:`epoch_options` gives the ``--cfg-options`` that change every epoch-based quantity tied to
the length: ``train_cfg.max_epochs``, ``val_interval`` where it was the whole run, and each
epoch-based scheduler's ``end``, ``T_max`` and ``milestones`` (step schedules keep their position
as a fraction of the run)."""


def epoch_options(cfg, epochs: int) -> list:
    """``KEY=VALUE`` strings (for ``--cfg-options``) that make ``cfg`` train ``epochs`` epochs."""
    old = cfg.train_cfg.get('max_epochs')
    if old is None:
        raise ValueError('epoch_options needs an epoch-based config (train_cfg.max_epochs)')
    opts = [f'train_cfg.max_epochs={epochs}']
    if cfg.train_cfg.get('val_interval') == old:
        opts.append(f'train_cfg.val_interval={epochs}')
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, s in enumerate(schedulers):
        if not s.get('by_epoch', True):
            continue
        if s.get('end') == old:
            opts.append(f'param_scheduler.{i}.end={epochs}')
        if s.get('T_max') == old:
            opts.append(f'param_scheduler.{i}.T_max={epochs}')
        if s.get('milestones'):
            ms = [max(1, round(m * epochs / old)) for m in s['milestones']]
            opts.append(f'param_scheduler.{i}.milestones=[{",".join(map(str, ms))}]')
    return opts
