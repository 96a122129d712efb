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
