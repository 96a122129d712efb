"""The Revisiting-BN optimizer rule and its input-normalisation data preprocessor."""
import pytest
import torch
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

import normdet
from mm_utils import packaged  # noqa: F401  (registers mmdet)


def test_rbn_optimizer_rule():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), normdet.RBN(8), nn.Conv2d(8, 8, 1, bias=False),
                          normdet.DNB(8), nn.BatchNorm2d(8), nn.Linear(8, 2))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='RBNOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                                              weight_decay=1e-4))))
    groups = ctor(model).optimizer.param_groups
    by_param = {id(g['params'][0]): g for g in groups}
    name = {id(p): n for n, p in model.named_parameters()}
    assert len(by_param) == len(list(model.parameters()))
    for pid, g in by_param.items():
        n = name[pid]
        scale = n in ('1.scale', '3.weight', '4.weight')
        norm_param = n.startswith(('1.', '4.')) or n in ('3.weight', '3.bias')
        assert g['lr'] == (0.1 * 0.01 if scale else 0.1), n
        assert g['weight_decay'] == (0.0 if norm_param or n.endswith('bias') else 1e-4), n
    # the DN SC module's weights are ordinary weights
    assert by_param[id(model[3].sc[0].weight)]['weight_decay'] == 1e-4
    # a user's norm_decay_mult is honoured, for normdet's norms too
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='RBNOptimWrapperConstructor', paramwise_cfg=dict(norm_decay_mult=0.5),
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))))
    groups = {id(g['params'][0]): g for g in ctor(model).optimizer.param_groups}
    for p in (model[1].scale, model[3].weight, model[4].weight):
        assert groups[id(p)]['weight_decay'] == pytest.approx(0.5e-4)


def test_rbn_input_bn_preprocessor():
    from mmdet.registry import MODELS
    pre = MODELS.build(dict(type='RBNDetDataPreprocessor', mean=None, std=None, bgr_to_rgb=True,
                            input_bn=True, bn_weight=0.1))
    bn = pre.input_bn
    assert torch.allclose(bn.scale, torch.full((3,), 0.058)) and not bn.bias.requires_grad
    imgs = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8) for _ in range(2)]
    out = pre(dict(inputs=imgs, data_samples=None), training=True)['inputs']
    assert out.shape == (2, 3, 16, 16)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3), unbiased=False), torch.full((3,), 0.058),
                               atol=1e-4, rtol=1e-3)
    assert int(bn.num_batches_tracked) == 1


def test_norm_decay_mult_applies_to_every_norm():
    """NormDetOptimWrapperConstructor (every config's default): norm_decay_mult reaches normdet's
    norms as it reaches BN and GN, so one setting treats every norm alike."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), normdet.FRN(8), nn.Conv2d(8, 8, 1), normdet.MABN(8),
                          normdet.DNB(8), nn.GroupNorm(2, 8), nn.BatchNorm2d(8))
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='NormDetOptimWrapperConstructor', paramwise_cfg=dict(norm_decay_mult=0.),
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))))
    groups = {id(g['params'][0]): g for g in ctor(model).optimizer.param_groups}
    for name, p in model.named_parameters():
        norm_param = name.split('.')[0] in ('1', '3', '4', '5', '6') and '.sc.' not in name
        assert groups[id(p)]['weight_decay'] == (0.0 if norm_param else 1e-4), name
        assert groups[id(p)]['lr'] == 0.1
    # without norm_decay_mult it is MMEngine's default rule: everything decays
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='NormDetOptimWrapperConstructor',
        optim_wrapper_cfg=dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))))
    assert {g['weight_decay'] for g in ctor(model).optimizer.param_groups} == {1e-4}


def test_rbn_input_bn_takes_statistics_over_real_pixels():
    """Two images of different aspect ratios pad into one batch: the input BN's batch statistics
    (here read off its running mean after one step) are those of the real pixels, and the padding
    stays 0."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    pre = MODELS.build(dict(type='RBNDetDataPreprocessor', mean=None, std=None, input_bn=True))
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(100, 160, (3, 24, 40), generator=g).to(torch.uint8),
            torch.randint(100, 160, (3, 40, 24), generator=g).to(torch.uint8)]
    samples = [DetDataSample(metainfo=dict(img_shape=tuple(i.shape[1:]))) for i in imgs]
    out = pre(dict(inputs=imgs, data_samples=samples), training=True)['inputs']
    assert out.shape == (2, 3, 40, 40)
    real = torch.cat([i.float().flatten(1) for i in imgs], dim=1)  # (3, real pixels)
    torch.testing.assert_close(pre.input_bn.running_mean, 0.1 * real.mean(dim=1))
    var = real.var(dim=1, unbiased=True)
    torch.testing.assert_close(pre.input_bn.running_var, 0.9 + 0.1 * var, rtol=1e-5, atol=1e-4)
    assert (out[0, :, 24:] == 0).all() and (out[1, :, :, 24:] == 0).all()
    real_out = torch.cat([out[0, :, :24, :40].flatten(1), out[1, :, :40, :24].flatten(1)], dim=1)
    torch.testing.assert_close(real_out.mean(dim=1), torch.zeros(3), atol=1e-5, rtol=0)
