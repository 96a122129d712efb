#!/usr/bin/env bash
# Build normdet's whole environment on a fresh machine, idempotently: the tested stack of
# requirements/lock.txt.
#
#   bash tools/setup_env.sh            # then: source "$(bash tools/setup_env.sh --print-venv)"/bin/activate
#
# The environment lives OUTSIDE the clone, in $NORMDET_CACHE (default ~/.cache/normdet), in a
# folder named by a hash of the lock file's pins (and of the CUDA build, below), so a second run
# (or CI on a clean clone) finds it and takes seconds. mmcv 2.1.0 has only a source distribution
# on PyPI: it is built once with its compiled ops (MMCV_WITH_OPS=1), with -std=c++20 (torch >= 2.14
# headers need it) and an old setuptools (its setup.py imports pkg_resources), and the wheel is
# cached beside the venv under a key of its own (Python, torch, mmcv, build tools, CUDA build), so a
# change to the other pins rebuilds the venv in minutes without recompiling mmcv.
#
# CUDA ops: when nvcc and a GPU are present, mmcv is built with FORCE_CUDA=1 for the GPUs'
# architectures (TORCH_CUDA_ARCH_LIST, read from nvidia-smi unless set). NORMDET_MMCV_CUDA=0
# forces a CPU-only build, =1 a CUDA build (e.g. on a build node without a GPU: set
# TORCH_CUDA_ARCH_LIST too). Nothing is downloaded but packages from the package index.
set -euo pipefail

PY=${PYTHON:-python3.11}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCK=$HERE/requirements/lock.txt
pin() { grep -E "^$1==" "$LOCK" | head -1; }
TORCH_PIN="$(pin torch) $(pin torchvision)"
MMCV_PIN=$(pin mmcv)
MMCV_VERSION=${MMCV_PIN#mmcv==}
BUILD_PINS="setuptools==69.5.1 wheel ninja"  # mmcv's build only: its setup.py needs pkg_resources
PINS=$(grep -vE '^\s*(#|$)' "$LOCK" | tr '\n' ' ')
PYVER=$($PY -c 'import sys;print(sys.version_info[:2])' 2>/dev/null || echo none)

# CUDA build of mmcv's ops: a CUDA toolkit (nvcc) and a GPU, or NORMDET_MMCV_CUDA=1
CUDA_TAG=""
if [ "${NORMDET_MMCV_CUDA:-auto}" = 1 ] || { [ "${NORMDET_MMCV_CUDA:-auto}" = auto ] \
    && command -v nvcc >/dev/null && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  command -v nvcc >/dev/null || { echo "[setup] a CUDA build of mmcv needs nvcc (a CUDA toolkit) on PATH" >&2; exit 1; }
  ARCHS=${TORCH_CUDA_ARCH_LIST:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -u | paste -sd ';' || true)}
  [ -n "$ARCHS" ] || { echo "[setup] NORMDET_MMCV_CUDA=1 without a GPU: set TORCH_CUDA_ARCH_LIST (e.g. 9.0)" >&2; exit 1; }
  NVCC=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  CUDA_TAG=" cuda $NVCC arch $ARCHS"
fi
MMCV_KEY=$(printf '%s' "$PYVER | $TORCH_PIN | $MMCV_PIN c++20 ops$CUDA_TAG | $BUILD_PINS" | sha256sum | cut -c1-12)
KEY=$(printf '%s' "$PYVER | $PINS | c++20 ops$CUDA_TAG | $BUILD_PINS" | sha256sum | cut -c1-12)
CACHE=${NORMDET_CACHE:-$HOME/.cache/normdet}
VENV=$CACHE/env-$KEY
WHEELS=$CACHE/mmcv-wheel-$MMCV_KEY

if [ "${1:-}" = "--print-venv" ]; then echo "$VENV"; exit 0; fi

step() { STEP="$1"; echo "[setup] $(date +%T) $1"; }
trap 'echo "[setup] FAILED at step: ${STEP:-start}. Fix the cause above and re-run: bash tools/setup_env.sh (finished steps are kept)." >&2' ERR

step "check python ($PY)"
command -v "$PY" >/dev/null || { echo "[setup] $PY not found: install Python 3.11 or set PYTHON=/path/to/python3.11" >&2; exit 1; }

if [ -f "$VENV/.complete" ]; then
  step "environment cached at $VENV"
else
  step "create venv $VENV (pins: requirements/lock.txt)"
  mkdir -p "$CACHE" "$WHEELS"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  P="$VENV/bin/python"
  "$P" -m pip install -q --upgrade pip
  step "install $TORCH_PIN"
  "$P" -m pip install -q $TORCH_PIN
  step "install build tools ($BUILD_PINS)"
  "$P" -m pip install -q $BUILD_PINS
  if ! ls "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    SRC=$(mktemp -d)
    "$P" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$SRC" "$MMCV_PIN"
    tar -xzf "$SRC"/mmcv-"$MMCV_VERSION".tar.gz -C "$SRC"
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$SRC"/mmcv-"$MMCV_VERSION"/setup.py
    if [ -n "$CUDA_TAG" ]; then
      step "build $MMCV_PIN with CUDA ops (nvcc $NVCC, TORCH_CUDA_ARCH_LIST=$ARCHS; a few minutes on 16 cores, cached afterwards)"
      export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCHS"
    else
      step "build $MMCV_PIN with compiled CPU ops (about 18 min on 2 cores; cached afterwards)"
      export FORCE_CUDA=0
    fi
    (cd "$SRC"/mmcv-"$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$P" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" .)
    rm -rf "$SRC"
  fi
  step "install mmcv wheel"
  "$P" -m pip install -q --no-deps "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl
  step "install the rest of requirements/lock.txt (mmengine, mmdet, evaluation, plots, tensorboard, tests)"
  "$P" -m pip install -q "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl -r "$LOCK"
  step "verify mmcv compiled ops"
  NORMDET_CHECK_CUDA=${CUDA_TAG:+1} "$P" - <<'PY'
import os
import torch, mmcv, mmdet
from mmcv.ops import nms, RoIAlign
devices = ['cpu'] + (['cuda'] if os.environ.get('NORMDET_CHECK_CUDA') and torch.cuda.is_available() else [])
for device in devices:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]], device=device)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), 0.5)
    assert keep.tolist() == [0, 2], keep
    RoIAlign((2, 2), 1.0)(torch.rand(1, 1, 8, 8, device=device), torch.tensor([[0., 0., 0., 4., 4.]], device=device))
print('[setup] mmcv', mmcv.__version__, 'ops ok on', ', '.join(devices), '; mmdet', mmdet.__version__,
      '; torch', torch.__version__)
PY
  touch "$VENV/.complete"
fi

step "install normdet (editable) from $HERE"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$HERE"
"$VENV/bin/python" -c "import normdet, mmcv.ops; print('[setup] normdet ready; activate with: source $VENV/bin/activate')"
