"""MMDetection's pretrained start, ``init_cfg=dict(type='Pretrained', ...)``, into any norm.

A BN-pretrained backbone (torchvision's or OpenMMLab's ResNet, an OpenMMLab MobileNetV2) names
its norms ``bn1``, ``conv1.bn``; the converted model names them ``mabn1``, ``conv1.frn``, and
holds tensors BN does not have. MMEngine's ``Pretrained`` would load the convolutions and leave
every norm at init, with one warning in the log. So, where ``norm_options.scratch=False`` keeps a
``Pretrained`` init, ``convert_norm`` puts ``NormDetPretrained`` before it:

    init_cfg=[dict(type='NormDetPretrained', strict=True),
              dict(type='Pretrained', checkpoint=..., prefix=...)]

MMEngine runs every other init before the children's ``init_weights`` and ``Pretrained`` after
them (``BaseModule.init_weights``); ``NormDetPretrained`` therefore only hooks the module's
state-dict loading, and MMEngine's own ``Pretrained`` load (its checkpoint schemes, ``prefix``,
``map_location``) then goes through the remap of ``normdet.norms.pretrained``: BN's tensors into
each norm (exactly, or by the mapping of docs/pretrained.md), a table of what went where in the
log, and a ``CheckpointError`` for a checkpoint tensor that loads nowhere unless
``strict=False``. The hook acts on the first load only (later loads, a resumption, are left as
they are).
"""
import logging

from mmengine.logging import print_log
from mmengine.registry import WEIGHT_INITIALIZERS

from ...norms.pretrained import check_report, remap_bn_state_dict


class _RemapOnLoad:
    """The load-state-dict hooks of one module: the remap before the load, and afterwards MMEngine's
    list of missing keys cleared of those the table already counts (left at init on purpose)."""

    def __init__(self, strict: bool):
        self.strict, self.done, self.report, self.prefix = strict, False, None, None

    def pre(self, module, state_dict, prefix, *args):
        if self.done:
            return
        self.done = True
        state, self.report = remap_bn_state_dict(module, state_dict, prefix)
        self.prefix = prefix
        where = f'Pretrained init of {type(module).__name__}'
        check_report(self.report, where, self.strict)
        for key in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[key]
        state_dict.update(state)
        report = self.report
        lines = [f'{where}: {report.loaded} tensors loaded (exact: used as BN uses them; '
                 'mapped: by the rule of docs/pretrained.md; dropped: BN statistics the norm '
                 'has no use for)', report.table()]
        if report.missing:
            lines.append(f'left at init (not in the checkpoint): {", ".join(report.missing)}')
        if report.skipped:
            lines.append(f'skipped (parts the model does not have): {", ".join(report.skipped)}')
        if report.unknown:
            lines.append(f'skipped (strict=False: they load nowhere): {", ".join(report.unknown)}')
        print_log('\n'.join(lines), logger='current',
                  level=logging.WARNING if report.missing or report.unknown else logging.INFO)

    def post(self, module, incompatible_keys):
        if self.report is None:
            return
        counted = {self.prefix + k for k in self.report.left_at_init}
        incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys
                                             if k not in counted]
        self.report = self.prefix = None  # once


@WEIGHT_INITIALIZERS.register_module()
class NormDetPretrained:
    """Makes the ``Pretrained`` init that follows it in the same ``init_cfg`` load a BN
    checkpoint into the module's norms (module docstring). ``strict=False`` skips checkpoint
    tensors that load nowhere instead of raising."""

    def __init__(self, strict: bool = True):
        self.strict = strict

    def __call__(self, module) -> None:
        hooks = _RemapOnLoad(self.strict)
        module.register_load_state_dict_pre_hook(hooks.pre)
        module.register_load_state_dict_post_hook(hooks.post)
