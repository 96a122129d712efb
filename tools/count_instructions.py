"""Count the CPU instructions of every normalization layer's training step, as ratios to BN: a
measure the machine's noise does not move.

    python tools/count_instructions.py [--shapes 2,96,8,8 ...] [--calls 40] [--out counts.json]

Times on a shared machine move by 10-30 % between runs, more than most of the layers' small-op
savings; the count of executed instructions moves by well under 1 %. This tool re-runs itself under
valgrind's callgrind (valgrind must be installed; it runs about 50x slower where it counts), on one
thread, with counting switched on only after the imports and the warm-up (``callgrind_control
--instr=on``; counted, torch's import alone costs 4x its uncounted time under valgrind), and counts
each measured section apart: ``--calls`` forward+backward calls of each layer in training mode at
each shape (every norm of the table, as the configs build it), after warm-up. Printed:
instructions per call and the ratio to BN's at the same shape. (Whole detector iterations are
left to benchmark_train.py: building SSDLite-mini under callgrind took more than 12 minutes.)

Instructions are not time: they miss cache misses and vector width, so the heavy passes over
large maps weigh less than they cost, and even at small maps time grows faster than the count
(DN-B at 2x96x8x8: 3.0x BN's instructions, about 6x its time). They rank changes to the layers'
fixed cost per call; read them next to the timed benchmarks.
No assertion: the numbers are for reading; the JSON (--out) keeps them.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHILD = 'NORMDET_COUNT_SECTIONS'  # set in the child: the file its section labels go to


def parse_args(argv=None):
    from normdet.cli.args import parse_tool_args, positive_int
    p = argparse.ArgumentParser(description='Count instructions (callgrind), as ratios to BN')
    p.add_argument('--shapes', nargs='*', default=['2,96,8,8'],
                   help='N,C,H,W input shapes of the layers (none: no layers)')
    p.add_argument('--calls', type=positive_int, default=40, help='counted calls per layer and shape')
    p.add_argument('--out', help='write the results as JSON')
    sys.path[:0] = [REPO, osp.join(REPO, 'tools')]
    args = parse_tool_args(p, argv, config=False)
    from benchmark_norms import parse_shapes
    args.shape_tuples = parse_shapes(args.shapes)  # a bad shape fails here, not under valgrind
    return args


def child(args):
    """Under callgrind: warm every section up, then run each between two os.getloadavg() calls, at
    which callgrind writes its counters (``--dump-before=os_getloadavg``)."""
    import torch
    torch.set_num_threads(1)
    from normdet.utils.allocator import keep_freed_memory
    keep_freed_memory()
    from benchmark_norms import layers
    sections = []
    for spec, shape in zip(args.shapes, args.shape_tuples):
        x = torch.randn(shape, requires_grad=True)
        dy = torch.randn(shape)
        for name, layer in layers(shape[1]).items():
            layer.train()
            params = list(layer.parameters())

            def step(layer=layer, params=params, x=x, dy=dy):
                for p in params:
                    p.grad = None
                x.grad = None
                layer(x).backward(dy)
            sections.append((dict(name=name, shape=spec), step))
    for _, step in sections:
        for _ in range(3):
            step()
    with open(os.environ[CHILD], 'w') as f:
        json.dump([label for label, _ in sections], f)
    instrument_on()
    os.getloadavg()  # the few counts between that and here go to the first dump
    for _, step in sections:
        for _ in range(args.calls):
            step()
        os.getloadavg()


def instrument_on(timeout=300):
    """Switch callgrind's counting on (it starts off: --instr-atstart=no) through vgdb. This
    process keeps running Python meanwhile: valgrind takes vgdb's command between code blocks,
    so it needs no ptrace to interrupt a blocking wait."""
    ctl = subprocess.Popen(['callgrind_control', '--instr=on', str(os.getpid())],
                           stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while ctl.poll() is None:
        if time.monotonic() > deadline:
            ctl.kill()
            sys.exit(f'callgrind_control --instr=on did not answer in {timeout} s')
        time.sleep(0.01)
    if ctl.returncode != 0:
        sys.exit(f'callgrind_control --instr=on failed (exit status {ctl.returncode})')


def counts(out_dir) -> list:
    """The instruction count of each dump in order (callgrind numbers them from 1)."""
    dumps = glob.glob(osp.join(out_dir, 'cg.out.*'))
    dumps.sort(key=lambda f: int(f.rsplit('.', 1)[1].split('-')[0]))
    result = []
    for path in dumps:
        with open(path) as f:
            result.append(next(int(line.split()[1]) for line in f
                               if line.startswith(('summary:', 'totals:'))))
    return result


def run(args, argv) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        labels_file = osp.join(tmp, 'sections.json')
        cmd = ['valgrind', '--tool=callgrind', '--instr-atstart=no', '--dump-before=os_getloadavg',
               '--dump-instr=no', f'--callgrind-out-file={osp.join(tmp, "cg.out")}', sys.executable,
               osp.abspath(__file__), *argv]
        env = dict(os.environ, **{CHILD: labels_file, 'OMP_NUM_THREADS': '1'})
        try:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        except FileNotFoundError:
            sys.exit('count_instructions.py needs valgrind (apt-get install valgrind)')
        if proc.returncode != 0 or not osp.exists(labels_file):
            sys.exit(f'the run under callgrind failed:\n{proc.stdout[-3000:]}')
        with open(labels_file) as f:
            labels = json.load(f)
        found = counts(tmp)
    if len(found) != len(labels) + 1:
        sys.exit(f'expected {len(labels) + 1} counter dumps, got {len(found)}: something else '
                 'called os.getloadavg() during the counted sections')
    rows = []
    for label, total in zip(labels, found[1:]):
        rows.append(dict(label, instructions=total / args.calls))
    return rows


def with_ratios(rows) -> list:
    """Each row's ratio to BN at the same shape (None where BN was not counted there)."""
    base = {r['shape']: r['instructions'] for r in rows if r['name'] == 'BN'}
    for r in rows:
        r['x_bn'] = r['instructions'] / base[r['shape']] if r['shape'] in base else None
    return rows


def table(rows) -> str:
    lines = ['| layer, shape | instructions per call | x BN |', '|---|---|---|']
    for r in rows:
        what = f"{r['name']} {r['shape']}"
        ratio = '' if r['x_bn'] is None else f"**{r['x_bn']:.2f}**"
        lines.append(f"| {what} | {r['instructions'] / 1e6:.2f} M | {ratio} |")
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if CHILD in os.environ:
        return child(args)
    rows = with_ratios(run(args, argv))
    print(f'Instructions per training forward+backward (callgrind, one thread, {args.calls} '
          'calls); ratio to BN at the same shape\n')
    print(table(rows))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(calls=args.calls, rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    from normdet.cli.stack import require_torch
    require_torch()  # a missing package is one line, before torch is imported
    from normdet.cli.run import run_tool
    run_tool(main)  # a bad argument prints its message, without a traceback
