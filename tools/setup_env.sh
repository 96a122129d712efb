#!/usr/bin/env bash
# Build normdet's whole environment on a fresh machine, idempotently.
#
#   bash tools/setup_env.sh            # then: source "$(bash tools/setup_env.sh --print-venv)"/bin/activate
#
# The environment lives OUTSIDE the clone, in $NORMDET_CACHE (default ~/.cache/normdet), in a
# folder named by a hash of the dependency pins below, so a second run (or CI on a clean clone)
# finds it and takes seconds. mmcv 2.1.0 has only a source distribution on PyPI: it is built once
# with its compiled ops (MMCV_WITH_OPS=1), with -std=c++20 (torch >= 2.14 headers need it) and an
# old setuptools (its setup.py imports pkg_resources), and the wheel is cached beside the venv.
# Nothing is downloaded but packages from the package index.
set -euo pipefail

PY=${PYTHON:-python3.11}
TORCH_PIN="torch==2.14.1 torchvision==0.29.1"
MMCV_PIN="mmcv==2.1.0"
STACK_PINS="mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.11 numpy<2.5 opencv-python-headless matplotlib scipy pytest pytest-timeout"
BUILD_PINS="setuptools==69.5.1 wheel ninja"
PYVER=$($PY -c 'import sys;print(sys.version_info[:2])' 2>/dev/null || echo none)
# The mmcv wheel depends only on Python, torch, mmcv and the build tools: it has its own key, so a
# change to the other pins rebuilds the venv in minutes without recompiling mmcv.
MMCV_KEY=$(printf '%s' "$PYVER | $TORCH_PIN | $MMCV_PIN c++20 ops | $BUILD_PINS" | sha256sum | cut -c1-12)
KEY=$(printf '%s' "$PYVER | $TORCH_PIN | $MMCV_PIN c++20 ops | $STACK_PINS | $BUILD_PINS" | sha256sum | cut -c1-12)
CACHE=${NORMDET_CACHE:-$HOME/.cache/normdet}
VENV=$CACHE/env-$KEY
WHEELS=$CACHE/mmcv-wheel-$MMCV_KEY
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${1:-}" = "--print-venv" ]; then echo "$VENV"; exit 0; fi

step() { STEP="$1"; echo "[setup] $(date +%T) $1"; }
trap 'echo "[setup] FAILED at step: ${STEP:-start}. Fix the cause above and re-run: bash tools/setup_env.sh (finished steps are kept)." >&2' ERR

step "check python ($PY)"
command -v "$PY" >/dev/null || { echo "[setup] $PY not found: install Python 3.11 or set PYTHON=/path/to/python3.11" >&2; exit 1; }

if [ -f "$VENV/.complete" ]; then
  step "environment cached at $VENV"
else
  step "create venv $VENV"
  mkdir -p "$CACHE" "$WHEELS"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  P="$VENV/bin/python"
  "$P" -m pip install -q --upgrade pip
  step "install $TORCH_PIN"
  "$P" -m pip install -q $TORCH_PIN
  step "install build tools ($BUILD_PINS)"
  "$P" -m pip install -q $BUILD_PINS
  if ! ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    step "build $MMCV_PIN with compiled ops (about 18 min on 2 cores; cached afterwards)"
    SRC=$(mktemp -d)
    "$P" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$SRC" "$MMCV_PIN"
    tar -xzf "$SRC"/mmcv-2.1.0.tar.gz -C "$SRC"
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$SRC"/mmcv-2.1.0/setup.py
    (cd "$SRC"/mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$P" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" .)
    rm -rf "$SRC"
  fi
  step "install mmcv wheel"
  "$P" -m pip install -q --no-deps "$WHEELS"/mmcv-2.1.0-*.whl
  step "install mmengine, mmdet, pycocotools, test tools"
  "$P" -m pip install -q "$WHEELS"/mmcv-2.1.0-*.whl $STACK_PINS
  step "verify mmcv compiled ops"
  "$P" - <<'PY'
import torch, mmcv, mmdet
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
print('[setup] mmcv', mmcv.__version__, 'ops ok; mmdet', mmdet.__version__, '; torch', torch.__version__)
PY
  touch "$VENV/.complete"
fi

step "install normdet (editable) from $HERE"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$HERE"
"$VENV/bin/python" -c "import normdet, mmcv.ops; print('[setup] normdet ready; activate with: source $VENV/bin/activate')"
