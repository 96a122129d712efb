"""Config validation before anything is built (normdet.openmmlab.engine.validate), as a family:
misspellings are generated from every key the configs and the layers have, and each must be
refused with a did-you-mean naming the key that was meant; every config in configs/ passes."""
import glob
import inspect
import os.path as osp

import pytest
from mmengine.config import Config

from mm_utils import REPO, run_cli
from normdet.norms import NORMS
from normdet.openmmlab import convert_norm, prepare_config
from normdet.openmmlab.engine import validate
from normdet.utils.config import walk
from normdet.utils.errors import ConfigError

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py'))
                 + glob.glob(osp.join(REPO, 'configs', 'mini', '*.py')))


def typos(word: str) -> list:
    """Misspellings a person makes: a letter dropped, two swapped, one doubled."""
    out = {word[:i] + word[i + 1:] for i in range(1, len(word))}
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(1, len(word) - 1)}
    out |= {word[:i] + word[i] + word[i:] for i in range(1, len(word))}
    return sorted(out - {word})


def _mini(name='ssdlite_bn'):
    return Config.fromfile(osp.join(REPO, 'configs', 'mini', f'{name}.py'))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_every_config_passes(path, synthetic_data, capsys):
    prepare_config(Config.fromfile(path))  # checks it first, then checks what it built
    assert 'warning' not in capsys.readouterr().err


def _keys(cfg):
    """Every dotted key of the config's dicts (list items by index), with its siblings."""
    for node, path in walk(cfg._cfg_dict, ''):
        prefix = path.lstrip('.')
        for key in node:
            if isinstance(key, str) and len(key) >= 5:
                yield f'{prefix}.{key}' if prefix else key, key, set(node)


def test_a_misspelt_option_key_names_the_key_it_resembles():
    cfg = _mini()
    checked = 0
    for dotted, key, siblings in _keys(cfg):
        if '[' in dotted:
            continue  # --cfg-options gives list items by index: model.x.0.y
        for typo in typos(key)[::3]:
            if typo in siblings:
                continue
            wrong = dotted[:len(dotted) - len(key)] + typo
            with pytest.raises(ConfigError, match='did you mean') as e:
                validate.check_options(cfg, {wrong: 1})
            assert f'{dotted}' in str(e.value), str(e.value)
            checked += 1
    assert checked > 300
    validate.check_options(cfg, {'train_cfg.max_epochs': 1, 'data_root': '/data/coco/',
                                 'param_scheduler.1.end': 4, 'brand_new_key': 1})


def test_a_misspelling_can_be_kept_on_purpose():
    cfg = _mini()
    with pytest.raises(ConfigError, match="allow_new_keys"):
        validate.check_options(cfg, {'nrom': 'GN'})
    validate.check_options(cfg, {'nrom': 'GN', 'allow_new_keys': ['nrom']})
    cfg.merge_from_dict({'nrom': 'GN'})
    with pytest.raises(ConfigError, match="config key 'nrom'.*did you mean norm"):
        validate.check_top_level(cfg)
    cfg.merge_from_dict({'allow_new_keys': ['nrom']})
    validate.check_top_level(cfg)


def test_every_norm_option_and_layer_argument_misspelt_is_refused():
    options = [p for p in inspect.signature(convert_norm).parameters if p not in ('cfg', 'norm')]
    for option in options:
        for typo in typos(option)[::2]:
            if typo in options:
                continue
            cfg = _mini()
            cfg.norm_options = {typo: 1}
            with pytest.raises(ConfigError, match=f'norm_options.{typo}: .*the options are'):
                validate.check_norm_options(cfg)
    for norm in NORMS.values():
        params = [p for p in inspect.signature(norm.layer_class.__init__).parameters
                  if p not in ('self', 'num_features', 'num_channels') and len(p) >= 4]
        for param in params:
            typo = typos(param)[0]
            cfg = _mini()
            cfg.merge_from_dict({'norm': norm.name, 'norm_options.layer_args': {typo: 1}})
            with pytest.raises(ConfigError, match=f'layer_args.{typo}: .*did you mean {param}'):
                validate.check_norm_options(cfg)


def test_a_switch_without_effect_warns(capsys):
    cfg = _mini()
    cfg.merge_from_dict({'norm_options.sync_stats': True})
    validate.check_norm_options(cfg)
    assert 'sync_stats=True has no effect with norm BN' in capsys.readouterr().err
    cfg.merge_from_dict({'norm': 'MABN'})
    validate.check_norm_options(cfg)
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('key,value,message', [
    ('optim_wrapper.optimizer.type', 'Adamm', "unknown type 'Adamm'.*did you mean Adam"),
    ('optim_wrapper.optimizer.lrr', 0.1, 'takes no argument .lrr. .did you mean lr'),
    ('train_cfg.max_epoch', 1, 'takes no argument .max_epoch. .did you mean max_epochs'),
    ('model.bbox_head.type', 'SSDHed', "unknown type 'SSDHed'.*did you mean SSDHead"),
    ('model.backbone.widen_factr', 1.0, 'widen_factr.*did you mean widen_factor'),
    ('param_scheduler.0.type', 'LinerLR', 'did you mean LinearLR'),
    ('default_hooks.checkpoint.type', 'CheckpointHok', 'did you mean CheckpointHook'),
    ('val_evaluator.type', 'CocoMetrik', 'did you mean CocoMetric'),
])
def test_a_misspelt_component_is_refused_before_it_is_built(key, value, message, synthetic_data):
    cfg = _mini()
    cfg.merge_from_dict({key: value})  # as a config file would have it (no --cfg-options check)
    with pytest.raises(ConfigError, match=message):
        prepare_config(cfg)


@pytest.mark.parametrize('option,message', [
    ('nrom=GN', 'the config has no nrom; did you mean norm?'),
    ('train_cfg.max_epoch=1', 'did you mean train_cfg.max_epochs?'),
    ('norm_options.layer_args.warmup_iter=50', "takes no argument 'warmup_iter' (did you mean "
                                               'warmup_iters?)'),
    ('optim_wrapper.optimizer.type=Adamm', "unknown type 'Adamm'"),
])
def test_the_tool_says_it_in_one_line(option, message, tmp_path):
    r = run_cli('tools/train.py', 'configs/mini/ssdlite_mabn.py', '--work-dir', str(tmp_path),
                '--cfg-options', option, timeout=300)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert '[normdet] error:' in r.stderr and message in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / 'last_checkpoint').exists()


def test_conv_args_reach_the_norms_conv_and_are_checked(synthetic_data):
    """norm_options.conv_args: the arguments of the convolution a norm comes with (MABN's
    CenConv), checked like layer_args; centre_depthwise=False leaves SSDLite's depthwise convs
    plain and centres the others."""
    from mmdet.registry import MODELS
    from normdet.layers import CenConv2d
    cfg = _mini('ssdlite_mabn')
    cfg.norm_options = dict(cfg.get('norm_options') or {}, conv_args=dict(centre_depthwse=False))
    with pytest.raises(ConfigError, match='conv_args.centre_depthwse: .*did you mean '
                                          'centre_depthwise'):
        validate.check_norm_options(cfg)
    gn = _mini('ssdlite_gn')
    gn.norm_options = dict(gn.get('norm_options') or {}, conv_args=dict(centre_depthwise=False))
    with pytest.raises(ConfigError, match='the GN norm comes with no convolution'):
        validate.check_norm_options(gn)
    cfg.norm_options.conv_args = dict(centre_depthwise=False)
    prepare_config(cfg)
    model = MODELS.build(cfg.model)
    convs = [m for m in model.modules() if isinstance(m, CenConv2d)]
    depthwise = [m for m in convs if m.groups > 1 and m.groups == m.in_channels]
    assert len(depthwise) == 26 and len(convs) == 63  # SSDLite-mini's
    assert not any(m.centred for m in depthwise)
    assert all(m.centred for m in convs if m not in depthwise)
