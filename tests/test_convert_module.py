"""normdet.convert_module on torchvision detection models (no download: random weights): every BN
and FrozenBatchNorm2d becomes the chosen norm with its parameters and statistics, the converted
model trains a step, and the BN-family norms give the BN model's outputs in eval."""
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

import normdet
from normdet.norms import NORMS, get_norm

BN_IN_EVAL = ('BN', 'SyncBN', 'DNB', 'DNC', 'RBN')  # eval: BN with the same statistics and affine


def randomise(model):
    """BN statistics and affine as a trained model has them, not a fresh layer's identity."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            c = m.running_var.numel()
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model


def faster_rcnn():
    torch.manual_seed(0)
    return randomise(torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=5, min_size=128, max_size=128,
        rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50, rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50, box_batch_size_per_image=64, box_detections_per_img=20))


def images():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, 128, 128, generator=g), torch.rand(3, 96, 128, generator=g)]


TARGETS = [dict(boxes=torch.tensor([[10., 12., 70., 90.]]), labels=torch.tensor([1])),
           dict(boxes=torch.tensor([[5., 5., 40., 30.], [50., 40., 120., 90.]]),
                labels=torch.tensor([2, 3]))]


def bns(model):
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]


@pytest.mark.parametrize('norm', list(NORMS))
def test_every_bn_converted_and_trains(norm):
    model = faster_rcnn()
    before = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in bns(model)]
    assert len(before) > 30
    assert normdet.convert_module(model, norm) is model
    layer = get_norm(norm).layer_class
    new = [m for m in model.modules() if type(m) is layer]
    assert len(new) == len(before)
    if layer is not nn.BatchNorm2d:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for m, (w, b) in zip(new, before):  # the affine carries over, RBN's weight as `scale`
        assert torch.equal(m.scale if norm == 'RBN' else m.weight, w) and torch.equal(m.bias, b)
    model.train()
    losses = model(images(), TARGETS)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert all(m.bias.grad is not None and torch.isfinite(m.bias.grad).all() for m in new)
    torch.optim.SGD(model.parameters(), lr=0.01).step()


@pytest.mark.parametrize('norm', BN_IN_EVAL)
def test_bn_family_gives_same_outputs_in_eval(norm):
    reference = faster_rcnn().eval()
    converted = normdet.convert_module(faster_rcnn(), norm).eval()
    x = torch.stack(images()[:1])
    with torch.no_grad():
        want, got = reference.backbone(x), converted.backbone(x)
        assert want.keys() == got.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5)
        dets_want, dets_got = reference(images()), converted(images())
    for a, b in zip(dets_want, dets_got):
        torch.testing.assert_close(b['boxes'], a['boxes'], rtol=1e-4, atol=1e-3)


def test_frozen_bn_becomes_a_trainable_norm():
    """torchvision's pretrained backbones use FrozenBatchNorm2d (buffers only): converted to BN it
    computes the same in eval and its affine becomes trainable; MABN gets the second moment."""
    torch.manual_seed(0)
    # float64: the frozen BN's x * scale + shift and BN's eval kernel round differently, by more
    # than 1e-5 at some of float32's outputs on some CPUs (seen on an AMD EPYC); in float64 the
    # two agree to 1e-9, and the check is of what the conversion keeps, not of rounding
    backbone = randomise(resnet_fpn_backbone(backbone_name='resnet18', weights=None,
                                             norm_layer=FrozenBatchNorm2d,
                                             trainable_layers=5)).double()
    frozen = bns(backbone)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        want = backbone(x)
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in frozen]
    converted = normdet.convert_module(backbone, 'BN').eval()
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in converted.modules())
    layers = [m for m in converted.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(layers) == len(frozen) and all(m.weight.requires_grad for m in layers)
    with torch.no_grad():
        got = converted(x)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-9, atol=1e-9)
    mabn = [m for m in normdet.convert_module(converted, 'MABN').modules()
            if isinstance(m, normdet.MABN)]
    assert len(mabn) == len(stats)
    for m, (mean, var) in zip(mabn, stats):
        torch.testing.assert_close(m.running_var, var + mean ** 2)


def test_what_cannot_be_converted_exactly_is_refused_and_the_rest_converts():
    """A BN without affine or running statistics: converted to a per-sample norm; refused, with
    its name, for a norm that keeps running statistics (its eval output would differ)."""
    def model():
        return nn.Sequential(nn.Conv2d(3, 8, 3),
                             nn.BatchNorm2d(8, affine=False, track_running_stats=False))
    converted = normdet.convert_module(model(), 'GN')
    assert isinstance(converted[1], nn.GroupNorm)
    for norm in ('BN', 'MABN', 'DNB', 'RBN'):
        m = model()
        with pytest.raises(ValueError, match="BatchNorm2d '1' has no running statistics"):
            normdet.convert_module(m, norm)
        assert isinstance(m[1], nn.BatchNorm2d)  # nothing replaced
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, affine=False))
    assert isinstance(normdet.convert_module(plain, 'MABN')[1], normdet.MABN)


def test_a_model_without_a_bn_is_returned_unchanged_with_a_warning():
    """Nothing to replace (a model built with GN, or with BatchNorm1d only) is said, not done
    silently: a user who converts such a model has not got the norm asked for."""
    for model in (nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8)),
                  nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8))):
        before = [type(m) for m in model.modules()]
        with pytest.warns(UserWarning, match=r'convert_module: Sequential has no 2d batch norm '
                                             r'\(BatchNorm2d, SyncBatchNorm, FrozenBatchNorm2d\)'
                                             r' to replace by FRN; it is returned unchanged'):
            assert normdet.convert_module(model, 'FRN') is model
        assert [type(m) for m in model.modules()] == before


class _ResidualIntoNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x) + x)


class _ConvIntoNorm(_ResidualIntoNorm):
    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class _ConvReadTwice(_ResidualIntoNorm):
    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


@pytest.mark.parametrize('cls,folds', [(_ResidualIntoNorm, 0), (_ConvIntoNorm, 1),
                                       (_ConvReadTwice, 0)])
def test_only_a_norm_fed_straight_by_its_conv_is_folded(cls, folds):
    """fold_norms reads the parent's forward: a norm after a sum, or a conv output read twice,
    stays as it is, and the output never changes."""
    m = cls().eval()
    with torch.no_grad():
        m.bn.running_mean.normal_()
        m.bn.running_var.uniform_(0.5, 2)
        x = torch.randn(2, 8, 6, 6)
        before = m(x)
        assert normdet.fold_norms(m) == folds
        torch.testing.assert_close(m(x), before, rtol=1e-5, atol=1e-5)
