"""Norms that carry their activation (FRN+TLU): the activation after them goes, and where no
activation follows, the norm goes without one.

FRN+TLU replaces a BN + activation pair (Singh & Krishnan 2020). mmdet's components cannot say
that in a config: one ``norm_cfg`` serves all their norms, and many activations are hard-wired
(mmdet's ResNet blocks, RetinaHead's and the RoI heads' ConvModules). So for a norm whose entry
in ``normdet.norms`` has ``fused_act=True``, ``convert_norm`` builds the detector as
``NormAct<Detector>`` (registered here for every mmdet detector class): the same detector, whose
constructor ends with :func:`fuse_norm_act`. Built that way by every tool (training, testing,
mmdet's own ``init_detector``), the model, its state_dict and the dumped config always agree.

:func:`fuse_norm_act` walks the model once. For each fused-act norm:
- followed by an activation: the norm keeps TLU and the activation is removed;
- followed by none (a linear bottleneck, an FPN conv, the last norm of a residual branch, a
  downsample): the norm loses TLU (``tau`` becomes None).
What "followed by" means is read from the module that runs them:
- mmcv ``ConvModule``: ``order`` has 'act' right after 'norm' and the module has an activation;
- ``nn.Sequential``: the next child is an activation;
- mmdet ``ResNet`` (stem: norm1 then relu) and its ``BasicBlock``/``Bottleneck``: norm1 (and norm2
  of a Bottleneck) feed the block's ReLU, the last norm feeds the residual sum. The blocks get a
  forward without the ReLU after a fused norm; the ReLU after the residual sum stays (it follows a
  sum, not a norm), as in timm's norm-act ResNets.
A fused-act norm found anywhere else keeps TLU, and the model's ``norm_act_unresolved`` lists it.
"""
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmdet.models import detectors
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmengine.registry import MODELS
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish,
               nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish)


def has_fused_act(module) -> bool:
    """A norm that carries an activation (FRN with TLU)."""
    return getattr(module, 'tau', None) is not None


def _fusable(module) -> bool:
    return hasattr(module, 'tau')  # FRN-like: may carry TLU


def _is_act(module) -> bool:
    return isinstance(module, ACTIVATIONS) or type(module).__name__ in ('Swish', 'HSwish',
                                                                         'HSigmoid', 'GELU')


def drop_act(norm) -> None:
    """Remove TLU from a built FRN-like norm."""
    norm.register_parameter('tau', None)


def _norm_act_forward(block, norm, x):
    """``block.relu(norm(x))``, without the ReLU when the norm carries its activation."""
    out = norm(x)
    return out if has_fused_act(norm) else block.relu(out)


class NormActBasicBlock(BasicBlock):
    """mmdet's BasicBlock with no ReLU after a norm that carries its activation."""

    def forward(self, x):
        def branch(x):
            out = _norm_act_forward(self, self.norm1, self.conv1(x))
            out = self.norm2(self.conv2(out))
            return out + (x if self.downsample is None else self.downsample(x))

        out = cp.checkpoint(branch, x) if self.with_cp and x.requires_grad else branch(x)
        return self.relu(out)


class NormActBottleneck(Bottleneck):
    """mmdet's Bottleneck (without plugins) with no ReLU after a norm that carries its activation."""

    def forward(self, x):
        def branch(x):
            out = _norm_act_forward(self, self.norm1, self.conv1(x))
            out = _norm_act_forward(self, self.norm2, self.conv2(out))
            out = self.norm3(self.conv3(out))
            return out + (x if self.downsample is None else self.downsample(x))

        out = cp.checkpoint(branch, x) if self.with_cp and x.requires_grad else branch(x)
        return self.relu(out)


def _fuse_block(block) -> set:
    if isinstance(block, Bottleneck):
        if block.with_plugins or block.with_dcn:
            raise NotImplementedError('FRN+TLU in a ResNet Bottleneck with plugins or DCN is not '
                                      'supported; use a plain ResNet')
        block.__class__ = NormActBottleneck
        fused, linear = (block.norm1, block.norm2), (block.norm3,)
    else:
        block.__class__ = NormActBasicBlock
        fused, linear = (block.norm1,), (block.norm2,)
    for norm in linear:
        drop_act(norm)
    return {id(n) for n in (*fused, *linear)}


def _fuse_conv_module(m) -> set:
    norm = m.norm if m.with_norm else None
    if norm is None or not _fusable(norm):
        return set()
    order = list(m.order)
    act_follows = (m.with_activation and order.index('norm') + 1 < len(order)
                   and order[order.index('norm') + 1] == 'act')
    if act_follows:
        m.with_activation = False  # ConvModule.forward then skips m.activate
        del m.activate
    else:
        drop_act(norm)
    return {id(norm)}


def _fuse_sequential(seq) -> set:
    children = list(seq.named_children())
    done = set()
    for i, (_, child) in enumerate(children):
        if not _fusable(child) or id(child) in done:
            continue
        if i + 1 < len(children) and _is_act(children[i + 1][1]):
            setattr(seq, children[i + 1][0], nn.Identity())
        else:
            drop_act(child)
        done.add(id(child))
    return done


def fuse_norm_act(model: nn.Module) -> list:
    """Apply the rules of the module docstring to ``model`` in place; returns the names of the
    fused-act norms no rule covered (they keep TLU)."""
    resolved = set()
    for m in list(model.modules()):
        if isinstance(m, ConvModule):
            resolved |= _fuse_conv_module(m)
        elif isinstance(m, (BasicBlock, Bottleneck)) and _fusable(m.norm1):
            resolved |= _fuse_block(m)
        elif isinstance(m, ResNet) and not m.deep_stem and _fusable(m.norm1):
            m.relu = nn.Identity()  # ResNet.relu serves only the stem: conv1 -> norm1 -> relu
            resolved.add(id(m.norm1))
        elif isinstance(m, nn.Sequential):
            resolved |= _fuse_sequential(m)
    return [name for name, m in model.named_modules() if _fusable(m) and id(m) not in resolved]


def norm_act_variant(cls: type) -> type:
    """``cls`` (a detector) whose constructor ends with :func:`fuse_norm_act`."""

    def __init__(self, *args, **kwargs):
        cls.__init__(self, *args, **kwargs)
        self.norm_act_unresolved = fuse_norm_act(self)

    return type(f'NormAct{cls.__name__}', (cls,), dict(__init__=__init__, __doc__=(
        f'mmdet\'s {cls.__name__} with norm-carried activations (normdet.openmmlab.models.norm_act).')))


VARIANT_PREFIX = 'NormAct'
for _name in detectors.__all__:
    _cls = getattr(detectors, _name)
    if isinstance(_cls, type) and issubclass(_cls, nn.Module):
        MODELS.register_module(name=VARIANT_PREFIX + _name, module=norm_act_variant(_cls))
