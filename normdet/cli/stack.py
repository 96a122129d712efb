"""The versions of the OpenMMLab stack normdet supports, a check that says what is missing and how
to get it, and the versions and commit a report records.

pyproject.toml declares the same ranges to pip, except mmcv's: PyPI has only mmcv's source for
recent torch releases, and its ``setup.py`` needs torch and ``pkg_resources`` at build time, so
``pip install`` cannot build it by itself (it stops with a raw ``pkg_resources`` traceback).
mmcv comes from ``tools/setup_env.sh`` (the tested stack, ``requirements/lock.txt``), from a
prebuilt wheel matching the user's torch and CUDA, or from a source build (README, "GPU cluster").
Every tool calls ``require_openmmlab()`` first, so a missing or unsupported package is one clear
message instead of an ImportError deep inside mmdet. The check reads the installed packages'
metadata and imports nothing.
"""
import importlib.metadata
import importlib.util
import os
import os.path as osp
import platform
import signal
import subprocess
import sys

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# what normdet runs on: only what CI or a recorded run has tested (CI: requirements/lock.txt,
# torch 2.14.1; the GPU run of docs/device/2026-11-22-h100-tests.txt: torch 2.11.0); mmdet 3.3
# itself asserts mmcv < 2.2. Older releases are not claimed: mmdet 3.0/3.1 need mmcv < 2.1, and the
# mini configs use AdamW(fused=True) on the CPU, which older torch lacks.
SUPPORTED = {
    'torch': '>=2.11,<2.15',
    'mmengine': '>=0.10.7,<0.11',
    'mmcv': '>=2.1.0,<2.2.0',
    'mmdet': '>=3.3.0,<3.4',
}
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HOW_TO_INSTALL = (
    'Build the tested stack with  bash tools/setup_env.sh  (then use  bash tools/env.sh CMD), or '
    'install mmcv for your torch and CUDA yourself: a prebuilt wheel '
    '(pip install "mmcv>=2.1.0,<2.2.0" -f https://download.openmmlab.com/mmcv/dist/'
    '<cu121>/<torch2.1>/index.html) or a source build; README.md, section "GPU cluster"')


def installed_version(name: str):
    """The installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mmcv_has_ops() -> bool:
    """Whether the installed mmcv ships its compiled ops (mmcv/_ext*.so); mmcv-lite does not."""
    files = importlib.metadata.files('mmcv') or []
    return any(osp.basename(str(f)).startswith('_ext') for f in files)


def problems(versions: dict = None, mmcv_ops: bool = None) -> list:
    """What keeps normdet's tools from running, one sentence per package; empty when all is well.
    ``versions`` (name -> version or None) and ``mmcv_ops`` default to what is installed."""
    if versions is None:
        versions = {name: installed_version(name) for name in SUPPORTED}
    found = []
    for name, spec in SUPPORTED.items():
        v = versions.get(name)
        if v is None:
            found.append(f'{name} is not installed (normdet needs {name}{spec})')
            continue
        try:
            ok = SpecifierSet(spec).contains(Version(v), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            found.append(f'{name} {v} is installed; normdet needs {name}{spec}')
    if importlib.util.find_spec('pkg_resources') is None:
        found.append('pkg_resources is missing (setuptools >= 82 dropped it; mmengine 0.10 '
                     'imports it to resolve mmdet:: configs): pip install "setuptools<82"')
    if versions.get('mmcv') is not None and not (
            _mmcv_has_ops() if mmcv_ops is None else mmcv_ops):
        found.append('mmcv is installed without its compiled ops (mmcv._ext; mmcv-lite, or a '
                     'build without MMCV_WITH_OPS=1): the detectors need mmcv.ops')
    return found


def _stopped_while_starting(signum, frame):
    how = 'terminated (SIGTERM)' if signum == signal.SIGTERM else 'interrupted (Ctrl-C)'
    print(f'[normdet] {how} while starting, before anything was written', file=sys.stderr,
          flush=True)
    os._exit(128 + signum)


def require_openmmlab() -> None:
    """Exit with one clear message (status 1) when the stack cannot run normdet's tools.

    Until the tool's ``main`` runs (``normdet.cli.run.run_tool``, which takes over), Ctrl-C and
    SIGTERM end it with one line and status 130 / 143: the imports of torch and mmdet take
    seconds and write nothing."""
    signal.signal(signal.SIGINT, _stopped_while_starting)
    signal.signal(signal.SIGTERM, _stopped_while_starting)
    found = problems()
    if found:
        sys.exit('[normdet] error: ' + '; '.join(found) + '.\n[normdet] ' + HOW_TO_INSTALL)


def require_torch() -> None:
    """For the tools that need only torch (the layer benchmarks): one line when it is missing."""
    if installed_version('torch') is None:
        sys.exit(f'[normdet] error: torch is not installed (normdet needs torch'
                 f'{SUPPORTED["torch"]}).\n[normdet] {HOW_TO_INSTALL}')


def git_commit(root: str = REPO):
    """The commit of the clone normdet runs from ('<sha> (uncommitted changes)' when its tracked
    files differ from it), or None outside a git clone."""
    if not osp.exists(osp.join(root, '.git')):
        return None
    try:
        sha = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', root, 'status', '--porcelain', '--untracked-files=no'],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f'{sha} (uncommitted changes)' if dirty else sha


def versions() -> dict:
    """The versions a report records: Python, torch, torchvision, mmengine, mmcv, mmdet, normdet
    and the evaluation backends."""
    from .. import __version__

    def version(name):  # an imported module's own version says more (torch's CUDA build: +cu130)
        module = sys.modules.get(name.replace('-', '_'))
        return getattr(module, '__version__', None) or installed_version(name)
    names = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'pycocotools', 'faster-coco-eval')
    return dict(python=platform.python_version(), **{n: version(n) for n in names},
                normdet=__version__)
