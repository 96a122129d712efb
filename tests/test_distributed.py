"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (torchrun, gloo): training,
a 2-process checkpoint evaluated by single-process tools/test.py, a rank that dies or hangs ending
the run with a message in bounded time, the scripts' argument checks, and the LR of gradient
accumulation."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from dist_utils import free_port
from mm_utils import REPO, config_path, run_cli, small_options
from normdet.data import generate_synthetic_coco

# slow: it builds and trains real detectors or launches processes (pytest -m "not slow" skips it)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope='module')
def coco8(tmp_path_factory):  # 8 training images: 2 iterations an epoch at 2 processes x 2
    return generate_synthetic_coco(str(tmp_path_factory.mktemp('coco8')), num_train=8,
                                   num_val=4, image_size=(128, 128))


def env(**extra):
    e = dict(os.environ, MASTER_PORT=str(free_port()))
    e.update(extra)
    e['PATH'] = os.path.dirname(sys.executable) + os.pathsep + e['PATH']
    return e


def bash(*args, timeout=540, **extra):
    return subprocess.run(['bash', *args], cwd=REPO, env=env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def check(r):
    if r.returncode != 0:  # pytest.fail: the whole tail, where an assert message is cut short
        pytest.fail(f'exit status {r.returncode}\n--- stdout (end) ---\n{r.stdout[-3000:]}\n'
                    f'--- stderr (end) ---\n{r.stderr[-6000:]}')
    return r


@pytest.mark.parametrize('config,extra', [
    ('ssdlite_syncbn', []),  # SyncBN across the 2 CPU processes
    ('retinanet_r50_fpn_mabn', ['norm_options.sync_stats=True']),
])
def test_dist_train_then_single_process_test(config, extra, coco8, tmp_path):
    cfg = config_path(*config.rsplit('_', 1))
    work = tmp_path / 'work'
    check(bash('tools/dist_train.sh', cfg, '2', '--work-dir', str(work), '--no-eval',
               '--cfg-options', *small_options(cfg, coco8), *extra))
    log = next(work.glob('*/*.log')).read_text()
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    ckpt = work / 'epoch_1.pth'
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert state['normdet']['world_size'] == 2 and len(state['normdet']['rng']) == 2
    assert state['meta']['iter'] == 2  # 8 images / (2 processes x 2)
    # the 2-process checkpoint in a single process, as a user evaluates it
    r = check(run_cli('tools/test.py', cfg, str(ckpt), '--work-dir', str(tmp_path / 'test'),
                      '--cfg-options', *small_options(cfg, coco8)))
    report = json.loads((tmp_path / 'test' / 'coco_metrics.json').read_text())
    assert report['batch'] == dict(per_gpu=2, gpus=2, total=4)
    assert 0 <= report['metrics']['bbox_mAP'] <= 1 and 'bbox AP' in r.stdout
    # and with 2 processes through dist_test.sh: the same numbers
    check(bash('tools/dist_test.sh', cfg, str(ckpt), '2', '--work-dir', str(tmp_path / 'dtest'),
               '--cfg-options', *small_options(cfg, coco8)))
    dreport = json.loads((tmp_path / 'dtest' / 'coco_metrics.json').read_text())
    assert dreport['metrics'] == report['metrics']


FAIL_HOOK = '''
import os, signal, time
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FailRankHook(Hook):
    """Rank 1 is killed (SIGKILL or SIGTERM) or hangs after its first iteration."""

    def __init__(self, mode):
        self.mode = mode

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == 1:
            if self.mode in ('KILL', 'TERM'):
                os.kill(os.getpid(), getattr(signal, 'SIG' + self.mode))
            time.sleep(3600)
'''


@pytest.mark.parametrize('mode', ['KILL', 'TERM', 'hang'])
def test_failed_rank_stops_the_run(mode, coco8, tmp_path):
    (tmp_path / 'failhook.py').write_text(FAIL_HOOK)
    base = config_path('ssdlite', 'BN')
    (tmp_path / 'failing.py').write_text(textwrap.dedent(f'''
        _base_ = '{base}'
        custom_imports = dict(imports=['normdet', 'failhook'], allow_failed_imports=False)
        custom_hooks = [dict(type='FailRankHook', mode='{mode}')]
        env_cfg = dict(dist_cfg=dict(timeout=15))
        '''))
    start = time.monotonic()
    r = bash('tools/dist_train.sh', str(tmp_path / 'failing.py'), '2', '--work-dir',
             str(tmp_path / 'work'), '--cfg-options', *small_options(base, coco8, epochs=3),
             timeout=300, PYTHONPATH=str(tmp_path))
    elapsed = time.monotonic() - start
    assert r.returncode == 1
    assert '[normdet] distributed run failed: rank ' in r.stderr, r.stderr[-3000:]
    # no trace: not torchrun's, nor the surviving rank's from its broken collective
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    summary = r.stderr[r.stderr.index('[normdet] distributed run failed'):]
    if mode != 'hang':  # the killed rank is named first, whichever rank torchrun saw end first
        signum = dict(KILL=9, TERM=15)[mode]
        assert summary.startswith(f'[normdet] distributed run failed: rank 1 was killed by '
                                  f'signal {signum} (SIG{mode})'), summary
    else:  # rank 0 gives up waiting after the 15 s process-group timeout, and says so
        assert 'timed out' in r.stderr.lower(), r.stderr[-3000:]
        assert 'rank 0 lost its connection to another rank' in summary, summary
    assert elapsed < 150, elapsed  # start-up (~20 s) + timeout + torchrun's clean-up


def descendants(pid: int) -> list:
    """The living processes under ``pid`` (torchrun starts its ranks in sessions of their own,
    so they are found by their parents)."""
    parent = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if fields[0] not in 'ZX':  # not a zombie
                parent[int(entry)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


@pytest.mark.parametrize('victim', ['script', 'launcher'])
def test_ranks_end_with_their_launcher(victim, coco8, tmp_path):
    """kill -KILL of tools/dist_train.sh, or of the torchrun launcher it starts, while the ranks
    train: no rank goes on training unsupervised."""
    import signal
    base = config_path('ssdlite', 'BN')
    proc = subprocess.Popen(
        ['bash', 'tools/dist_train.sh', base, '2', '--work-dir', str(tmp_path / 'work'),
         '--cfg-options', *small_options(base, coco8, epochs=200)],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids = []
    try:
        for line in proc.stdout:  # the ranks train
            if 'Epoch(train)' in line:
                break
        pids = descendants(proc.pid)
        launcher = [p for p in pids if
                    b'normdet.cli.launch' in open(f'/proc/{p}/cmdline', 'rb').read()]
        ranks = [p for p in pids if b'tools/train.py' in open(f'/proc/{p}/cmdline', 'rb').read()
                 and p not in launcher]
        assert len(launcher) == 1 and len(ranks) >= 2, pids
        os.kill(proc.pid if victim == 'script' else launcher[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(p in descendants(1) for p in ranks):
            time.sleep(0.5)
        left = [p for p in ranks if p in descendants(1)]
        assert not left, f'ranks {left} outlived their launcher'
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()


def test_master_port_in_use():
    """Said before anything starts, with how to choose another port (c10d's EADDRINUSE
    traceback otherwise, once per process)."""
    import socket
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        r = bash('tools/dist_train.sh', 'configs/ssdlite_bn.py', '2', timeout=120,
                 MASTER_PORT=str(port))
    assert r.returncode == 1 and time.monotonic() - start < 60
    assert f'[normdet] error: MASTER_PORT {port} is in use' in r.stderr, r.stderr[-3000:]
    assert 'choose a free port, e.g. MASTER_PORT=' in r.stderr and 'Traceback' not in r.stderr


def test_a_tool_error_is_printed_once(coco8, tmp_path):
    """Every rank hits the same bad data root: one line, not one per rank in torchrun's trace."""
    cfg = config_path('ssdlite', 'BN')
    r = bash('tools/dist_train.sh', cfg, '2', '--work-dir', str(tmp_path / 'work'),
             '--cfg-options', *small_options(cfg, '/no/such/coco/'), timeout=300)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith('[normdet] error: ')]
    assert len(lines) == 1, r.stderr[-3000:]
    assert "dataset root '/no/such/coco/' does not exist" in lines[0]
    assert 'Traceback' not in r.stderr and 'ChildFailedError' not in r.stderr


EXIT_TOOL = '''
import atexit, sys
import torch.distributed as dist
from normdet.cli.run import run_tool
from normdet.utils.errors import ConfigError


class Finalised:
    def __del__(self):
        print(' finalised', end='')


KEPT = Finalised()  # collected only by the interpreter's finalisation


def main():
    dist.init_process_group('gloo', init_method='file://' + sys.argv[1], rank=0, world_size=1)
    atexit.register(lambda: open(sys.argv[1] + '.atexit', 'w').write('ran'))
    print('the tool printed this', end='')  # not flushed yet
    if sys.argv[2] == 'fail':
        raise ConfigError('a bad config')


run_tool(main)
'''


@pytest.mark.parametrize('outcome,code', [('ok', 0), ('fail', 1)])
def test_a_rank_exits_without_the_finalisation(outcome, code, tmp_path):
    """run_tool ends a process of a distributed run through exit_rank: its exit status, exit
    handlers and unflushed output are kept, and the interpreter's finalisation (in which a gloo
    thread still letting go of the last collective's tensors aborts the process) is skipped."""
    script = tmp_path / 'tool.py'
    script.write_text(EXIT_TOOL)
    store = tmp_path / 'store'
    r = subprocess.run([sys.executable, str(script), str(store), outcome], cwd=REPO,
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == code, r.stderr[-3000:]
    assert r.stdout == 'the tool printed this', r.stdout  # flushed, and no finalisation
    assert (tmp_path / 'store.atexit').read_text() == 'ran'
    assert ('[normdet] error: a bad config' in r.stderr) == (outcome == 'fail'), r.stderr[-3000:]


def test_resume_restores_every_ranks_statistics(coco8, tmp_path):
    """2 processes with per-GPU MABN statistics: 2 epochs straight, and 1 epoch then --resume to
    2, end with the same weights and the same buffers on each rank (MABN's ring buffers, counter
    and running_var differ between the ranks; a checkpoint holding rank 0's only gave rank 1
    rank 0's statistics on resume)."""
    cfg = config_path('ssdlite', 'MABN')

    def train(work, epochs, *extra):
        check(bash('tools/dist_train.sh', cfg, '2', '--work-dir', str(work), '--no-eval', *extra,
                   '--cfg-options', *small_options(cfg, coco8, epochs=epochs)))

    train(tmp_path / 'straight', 2)
    train(tmp_path / 'resumed', 1)
    train(tmp_path / 'resumed', 2, '--resume')
    a, b = (torch.load(tmp_path / d / 'epoch_2.pth', map_location='cpu', weights_only=True)
            for d in ('straight', 'resumed'))
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    ranks_a, ranks_b = a['normdet']['rank_buffers'], b['normdet']['rank_buffers']
    assert len(ranks_a) == len(ranks_b) == 2
    key = next(k for k in ranks_a[1] if k.endswith('x2_buffer'))
    assert not torch.equal(ranks_a[0][key], ranks_a[1][key])  # per-GPU statistics differ
    for rank in (0, 1):
        for k, v in ranks_a[rank].items():
            assert torch.equal(v, ranks_b[rank][k]), (rank, k)


@pytest.mark.parametrize('args,message', [
    ([], 'usage: bash tools/dist_train.sh CONFIG NPROC'),
    (['configs/nope.py', '2'], "config 'configs/nope.py' not found"),
    (['configs/ssdlite_bn.py', 'two'], "NPROC must be a positive integer"),
])
def test_dist_train_checks_arguments(args, message):
    r = bash('tools/dist_train.sh', *args, timeout=30)
    assert r.returncode == 2 and message in r.stderr


def test_dist_env_checks():
    r = bash('tools/dist_train.sh', 'configs/ssdlite_bn.py', '2', timeout=30, NNODES='2',
             NODE_RANK='2')
    assert r.returncode == 2 and '0 <= NODE_RANK < NNODES' in r.stderr
    r = bash('tools/dist_test.sh', 'configs/ssdlite_bn.py', 'missing.pth', '2', timeout=30)
    assert r.returncode == 2 and "checkpoint 'missing.pth' not found" in r.stderr
    r = bash('tools/slurm_train.sh', 'p', 'job', 'configs/ssdlite_bn.py', 'w', timeout=30,
             GPUS='x')
    assert r.returncode == 2 and 'GPUS must be a positive integer' in r.stderr


@pytest.mark.parametrize('steps', [1, 4])
def test_auto_scale_lr_follows_accumulation(steps, coco8):
    from normdet.openmmlab import build_runner
    from normdet.cli.config import load_config
    cfg = load_config(config_path('retinanet_r50_fpn', 'BN'), {
        'optim_wrapper.accumulative_counts': steps, 'data_root': coco8,
        'experiment_name': f'acc{steps}', 'visualizer.name': f'acc{steps}'}, work_dir='/tmp/acc')
    runner = build_runner(cfg)
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    # lr 0.01 is for 16 images; here 1 process x 2 images x `steps` accumulation steps
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(0.01 * 2 * steps / 16)
