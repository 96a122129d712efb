"""The norm study: train every run the papers' claims need on the embedded benchmark, then write
docs/results.md (numbers, paired t-tests, a verdict per claim) and its plots.

    python tools/study.py [--plan full|smoke] [--work-dir work_dirs/study] [--jobs 2]
        [--parts ssdlite retinanet ...] [--seeds 0] [--norms DNB BN] [--stop-by 18:30]
        [--results docs/results.md] [--report-only]

Each part of the plan (normdet.study.plan) is a grid of (norm, images per GPU, seed) runs of one
mini config, trained by tools/sweep.py (resumable: finished runs are kept, an interrupted one
resumes), ``--jobs`` of them at a time (each with cores / jobs threads: on 2 cores two
single-threaded runs train faster than one run on two threads), then the runs of several
processes (the papers' parts) one at a time, seed by seed: every norm's first
seed before any norm's second, so that a study stopped part-way leaves paired seeds. Every run of
a part has the same data, epochs and recipe; what differs between runs is only what the part
varies.
``--report-only`` writes the results from the runs already there. ``--plan smoke`` is the CI
version: two one-epoch runs on a tiny dataset. ``--seeds 0`` trains one seed of every run of the
plan (its results go to WORK_DIR/results.md) and, from those runs' times, estimates how long the
whole plan (with ``--parts``, the parts named) takes on this machine. ``--stop-by HH:MM`` starts
no run that its cell's usual time says would end after then (a machine lent until a given hour:
a run cut off there is lost); the next call trains the rest.
"""
import argparse
import concurrent.futures
import dataclasses
import datetime
import fnmatch
import glob
import heapq
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # this clone's normdet
from normdet.cli.stack import require_openmmlab  # noqa: E402

require_openmmlab()
from normdet.cli.args import parse_tool_args, positive_int  # noqa: E402
from normdet.cli.run import run_tool  # noqa: E402
from normdet.study.plan import DEFAULT_EPOCHS, Part, epochs_of, plans  # noqa: E402
from normdet.study.runs import RUN_INFO, read_json  # noqa: E402
from normdet.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Run the norm study and write docs/results.md')
    p.add_argument('--plan', default='full', choices=['full', 'smoke'])
    p.add_argument('--parts', nargs='+',
                   help='only these parts, by name or shell pattern (\'papers_*\'; default: every '
                        'part of the plan but the optional)')
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'study'))
    p.add_argument('--jobs', type=positive_int, default=2, help='runs trained at a time')
    p.add_argument('--seeds', nargs='+', type=int,
                   help='only these seeds of each part (e.g. 0: one run per cell, to time the '
                        'plan); the results then go to WORK_DIR/results.md')
    p.add_argument('--norms', nargs='+',
                   help='only these norms of each part (e.g. DNB BN: the pair a claim compares '
                        'first); the results then go to WORK_DIR/results.md')
    p.add_argument('--stop-by', type=clock_time, metavar='HH:MM',
                   help='start no run that would end after this time of day (the next one to '
                        'come), by the mean time of the finished runs of its part, norm and '
                        'batch (of its part while its cell has none; a run with neither starts)')
    p.add_argument('--epochs', nargs='+', default=DEFAULT_EPOCHS,
                   metavar='DETECTOR=N', help='epochs per mini detector')
    p.add_argument('--results', default=None,
                   help='where to write the results (default: docs/results.md for the full '
                        'plan, WORK_DIR/results.md otherwise)')
    p.add_argument('--report-only', action='store_true', help='no training, only the results')
    p.add_argument('--append', help='a Markdown file appended to the results (default for the '
                                    'full plan: docs/results_notes.md, the reading of the '
                                    'results and the quick start\'s curve)')
    return parse_tool_args(p, argv, config=False)


def clock_time(text: str, now=None) -> float:
    """An argparse type: 'HH:MM', the next time of day it names (today, or tomorrow once it
    has passed), as seconds since the epoch."""
    try:
        hour, minute = (int(x) for x in text.split(':'))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a time of day HH:MM (e.g. 18:30)') \
            from None
    now = datetime.datetime.now() if now is None else now
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (at if at > now else at + datetime.timedelta(days=1)).timestamp()


def sweep_command(part: Part, norm, batch, seed, work_dir, threads):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'sweep.py'), '--detector', part.detector,
           '--norms', norm, '--batch', str(batch), '--seeds', str(seed),
           '--epochs', str(part.epochs), '--work-dir', osp.join(work_dir, part.name),
           '--no-report']
    if part.gpus > 1:  # processes of one thread each
        cmd += ['--gpus', str(part.gpus)]
        threads = 1
    if part.options:
        cmd += ['--cfg-options', *part.options]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return cmd, env


def train(parts, args) -> None:
    jobs = [(p, *r) for p in parts for r in p.runs()]
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    start = time.monotonic()
    print(f'[study] {len(jobs)} runs in {len(parts)} parts, {args.jobs} at a time, '
          f'{threads} thread(s) each; '
          f'{len(jobs) - len(unfinished(jobs, finished(parts, args.work_dir)))} finished before',
          flush=True)
    done, returned = 0, set()  # the (part name, norm, batch, seed) of the runs returned

    def one(job):
        part, norm, batch, seed = job
        if args.stop_by is not None:  # a run cut off at the deadline is lost: do not start it
            records = finished(parts, args.work_dir)
            cost = unfinished([job], records) and run_costs([job], records, fallback=True)
            if cost and time.time() + cost[0] > args.stop_by:
                return job, (f'not started: its usual {cost[0] / 60:.0f} min would end after '
                             '--stop-by')
        cmd, env = sweep_command(part, norm, batch, seed, args.work_dir, threads)
        log = osp.join(args.work_dir, part.name, 'sweep_console.log')
        os.makedirs(osp.dirname(log), exist_ok=True)
        with open(log, 'a') as f:
            rc = subprocess.call(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
        return job, rc

    def results():
        # runs of one process, ``jobs`` at a time; then those of several processes, one at a
        # time (each already uses the cores)
        single = [j for j in jobs if j[0].gpus == 1]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            yield from pool.map(one, single)
        yield from map(one, [j for j in jobs if j[0].gpus > 1])

    for (part, norm, batch, seed), rc in results():
        done += 1
        el = time.monotonic() - start
        layout = f'{part.gpus}x{batch}' if part.gpus > 1 else f'b{batch}'
        # what is left, from the records of the runs finished so far (a run skipped because it
        # finished before costs nothing now, so the elapsed time says nothing about the rest)
        returned.add((part.name, norm, batch, seed))
        every = run_records(parts, args.work_dir)  # read once a line
        records = done_only(every)
        todo = [j for j in unfinished(jobs, records) if (j[0].name, *j[1:]) not in returned]
        left = remaining_seconds(todo, records, args.jobs)
        # sweep.py records a run that failed or diverged and exits 0: say what it recorded
        status = (rc if isinstance(rc, str) else
                  run_status(every, part, norm, batch, seed) if rc == 0 else f'exit {rc}')
        print(f'[study {done}/{len(jobs)}] {part.name} {norm} {layout} s{seed}: '
              f'{status or "no record"} (elapsed {el / 60:.1f} min, '
              + (f'about {left / 60:.1f} min left' if left is not None else
                 'the time left is unknown until a run of each part has finished')
              + ')', flush=True)


def run_records(parts, work_dir: str) -> dict:
    """{part name: the run records of the part in ``work_dir``, whatever their status, oldest
    first}."""
    return {part.name: [read_json(p) for p in sorted(
        glob.glob(osp.join(work_dir, part.name, '*', RUN_INFO)), key=osp.getmtime)]
        for part in parts}


def done_only(records: dict) -> dict:
    """:func:`run_records`'s records of the finished runs only."""
    return {name: [r for r in rs if r.get('status') == 'done'] for name, rs in records.items()}


def finished(parts, work_dir: str) -> dict:
    """{part name: the run records of the part's finished runs in ``work_dir``}."""
    return done_only(run_records(parts, work_dir))


def run_status(records: dict, part, norm, batch, seed):
    """The status (done, diverged, failed) of the cell's newest run record in ``records``
    (:func:`run_records`'s); None without one."""
    recs = [r for r in records[part.name] if (r['norm'], r['batch'], r['seed']) ==
            (norm, batch, seed)]
    return recs[-1].get('status') if recs else None


def unfinished(jobs, records: dict) -> list:
    """The (part, norm, batch, seed) jobs that have no finished run in ``records``
    (:func:`finished`'s)."""
    done = {(name, r['norm'], r['batch'], r['seed']) for name, rs in records.items() for r in rs}
    return [j for j in jobs if (j[0].name, *j[1:]) not in done]


def schedule(costs, jobs: int) -> float:
    """Seconds that runs of these costs take, handed out in order to ``jobs`` workers."""
    free = [0.0] * max(1, jobs)  # when each worker is next free
    for c in costs:
        heapq.heappush(free, heapq.heappop(free) + c)
    return max(free)


def run_costs(jobs, records: dict, fallback: bool = False):
    """The cost of each (part, norm, batch, seed) job: the mean wall time (s) of the finished
    runs of its part, norm and batch in ``records`` (:func:`finished`'s); with ``fallback``, a
    cell with none costs the mean of its part's finished runs. None when a job has no cost."""
    costs = []
    for part, norm, batch, _ in jobs:
        walls = [(r['norm'], r['batch'], r['wall_s']) for r in records[part.name]
                 if r.get('wall_s')]
        t = [w for n, b, w in walls if (n, b) == (norm, batch)] or (
            [w for *_, w in walls] if fallback else [])
        if not t:
            return None
        costs.append(sum(t) / len(t))
    return costs


def remaining_seconds(jobs, records: dict, n_jobs: int, fallback: bool = True):
    """About how long ``jobs`` take, as train() runs them: the one-process runs ``n_jobs`` at a
    time, then the runs of several processes one at a time, each costing the mean time of the
    runs of its (part, norm, batch) in ``records`` (with ``fallback``, of its part); None when a
    job has no run in ``records`` to cost it by."""
    single = run_costs([j for j in jobs if j[0].gpus == 1], records, fallback)
    several = run_costs([j for j in jobs if j[0].gpus > 1], records, fallback)
    if single is None or several is None:
        return None
    return schedule(single, n_jobs) + sum(several)


def estimate_plan(parts, work_dir: str, jobs: int):
    """(seconds, runs): how long all the parts' runs take as train() runs them (``jobs`` of the
    one-process runs at a time, then the others one at a time), each run costing the mean time
    of the runs of its (part, norm, batch) already trained; None when a cell has no finished
    run."""
    runs = [(p, *r) for p in parts for r in p.runs()]
    t = remaining_seconds(runs, finished(parts, work_dir), jobs, fallback=False)
    return None if t is None else (t, len(runs))


def select_parts(parts, patterns, plan='full') -> list:
    """The parts named by ``patterns`` (names or shell patterns, 'papers_ssdlite*'), in the
    plan's order; a pattern that matches no part is refused."""
    unknown = [a for a in patterns if not any(fnmatch.fnmatchcase(p.name, a) for p in parts)]
    if unknown:
        raise ConfigError(f'unknown parts {sorted(unknown)}; the {plan} plan has '
                          f'{", ".join(p.name for p in parts)}')
    return [p for p in parts if any(fnmatch.fnmatchcase(p.name, a) for a in patterns)]


def select_cells(parts, seeds=None, norms=None) -> list:
    """The parts with only these seeds and norms (None: all of them), dropping a part left with
    none; a seed or norm that no part has, or a selection that leaves no run, is refused, naming
    what the parts have."""
    all_seeds = sorted({s for p in parts for s in p.seeds})
    all_norms = list(dict.fromkeys(n for p in parts for n in p.norms))
    have = (f'the selected parts have seeds {" ".join(map(str, all_seeds))} and norms '
            f'{" ".join(all_norms)}')
    unknown = ([f'--seeds {s}' for s in seeds or [] if s not in all_seeds] +
               [f'--norms {n}' for n in norms or [] if n not in all_norms])
    if unknown:
        raise ConfigError(f'{", ".join(unknown)}: no part has it ({have})')
    picked = [dataclasses.replace(p, seeds=[s for s in p.seeds if seeds is None or s in seeds],
                                  norms=[n for n in p.norms if norms is None or n in norms])
              for p in parts]
    picked = [p for p in picked if p.seeds and p.norms]
    if not picked:
        raise ConfigError(f'--seeds {" ".join(map(str, seeds))} --norms {" ".join(norms)}: no '
                          f'part has these seeds and norms together ({have})')
    return picked


def main(argv=None):
    args = parse_args(argv)
    epochs = epochs_of(args.epochs)
    parts = plans(epochs)[args.plan]
    if args.parts:
        parts = select_parts(parts, args.parts, args.plan)
    else:
        parts = [p for p in parts if not p.optional]
    planned = parts
    parts = select_cells(parts, args.seeds, args.norms)
    if not args.report_only:
        train(parts, args)
    if args.seeds or args.norms:
        est = estimate_plan(planned, args.work_dir, args.jobs)
        if est:
            what = 'the selected parts' if args.parts else 'the whole plan'
            print(f'[study] {what} ({est[1]} runs) at {args.jobs} at a time on this machine '
                  f'(runs of several processes one at a time): about {est[0] / 3600:.2f} h '
                  '(each run costing the mean time of its part, norm and batch here)',
                  flush=True)
        if not args.results:
            args.results = osp.join(args.work_dir, 'results.md')
    from normdet.study import write_results
    out = args.results or (osp.join(REPO, 'docs', 'results.md') if args.plan == 'full'
                           else osp.join(args.work_dir, 'results.md'))
    # the command that regenerates the results as a user runs it (not this run's paths)
    command = ['--jobs', str(args.jobs)] + (['--plan', args.plan] if args.plan != 'full' else [])
    if args.epochs != DEFAULT_EPOCHS:
        command += ['--epochs', *args.epochs]
    append = args.append
    if append is None and args.plan == 'full' and not args.results:
        append = osp.join(REPO, 'docs', 'results_notes.md')  # the notes written after the runs
        append = append if osp.exists(append) else None
    extra = open(append).read() if append else ''
    path = write_results(plans(epochs)[args.plan], args.work_dir, out, argv=command, extra=extra)
    print(f'[study] results: {path}', flush=True)
    return path


if __name__ == '__main__':
    run_tool(main)
