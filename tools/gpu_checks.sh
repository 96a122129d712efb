#!/usr/bin/env bash
# The GPU issue's checks in one scripted run, for a lent H100/H200 (device tool). From the
# checkout root, with .gpu carried (../shared/gpu/README.md):
#
#   source .gpu/setup.sh && bash tools/gpu_checks.sh [quick]
#
# Writes every log under $OUT/docs/device/<date>-gpu-*.txt (or docs/device/ without $OUT):
#   1. the test suite on the GPU: CUDA layer tests, the Triton kernels on CUDA, the layer files;
#      the workflow tests on the GPU take the rest of the time budget, so they come last
#   2. tools/benchmark_norms.py --device cuda at the detector shapes, fp32 and bf16, NCHW and
#      channels_last: ratios to cuDNN BN (min / median / max) and the bandwidth floor
#   3. tools/benchmark_train.py on the GPU: every config's training iteration against its BN
#      config, fp32 and --amp, img/s and peak memory; SSDLite-mini on the Triton kernels against
#      the PyTorch ops (--kernels torch triton)
#   4. RetinaNet-MABN end to end: a few minutes of training, tools/test.py, tools/deploy.py
# "quick" runs a shorter version of each (a first call to check the set-up).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}/docs/device
mkdir -p "$out"
day=$(date +%F)
quick=${1:-}
log() { echo "[gpu_checks] $(date +%T) $*"; }
run() {  # run NAME CMD...: the command's output into its log, its status at the end
  local name=$1; shift
  log "$name: $*"
  { echo "# $* ($(date -Is), $(python3 -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__)'))"
    "$@"; echo "# exit status $?"; } > "$out/$day-gpu-$name.txt" 2>&1
  tail -3 "$out/$day-gpu-$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/$day-gpu-device.txt"

run tests-layers python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_kernels.py \
  tests/test_frn.py tests/test_mabn.py tests/test_dn.py tests/test_rbn.py tests/test_norms.py
shapes=(2,256,200,336 2,64,400,672 24,96,160,160 24,1280,10,10)
[ -n "$quick" ] && shapes=(2,256,100,168)
run bench-norms python3 tools/benchmark_norms.py --device cuda --dtypes fp32 bf16 \
  --layouts nchw channels_last --shapes "${shapes[@]}" --out "$out/$day-gpu-bench-norms.json"
iters=$([ -n "$quick" ] && echo 2 || echo 5)
for amp in "" --amp; do
  run "bench-train${amp:+-amp}" python3 tools/benchmark_train.py --all ssdlite retinanet_r50_fpn \
    mask_rcnn_r50_fpn mini/ssdlite --device cuda --iters "$iters" --repeats 3 $amp \
    --out "$out/$day-gpu-bench-train${amp:+-amp}.json"
done
# what the Triton kernels buy per iteration: the same configs on the PyTorch ops, in one run
[ -z "$quick" ] && run bench-train-kernels python3 tools/benchmark_train.py --all mini/ssdlite \
  --device cuda --iters 5 --repeats 3 --kernels torch triton \
  --out "$out/$day-gpu-bench-train-kernels.json"
work=/tmp/gpu_r50_mabn
epochs=$([ -n "$quick" ] && echo 1 || echo 4)
run e2e-train python3 tools/train.py configs/retinanet_r50_fpn_mabn.py --work-dir $work \
  --overwrite --cfg-options train_cfg.max_epochs=$epochs train_cfg.val_interval=$epochs
ckpt=$(ls -t $work/epoch_*.pth 2>/dev/null | head -1)
if [ -n "$ckpt" ]; then
  run e2e-test python3 tools/test.py configs/retinanet_r50_fpn_mabn.py "$ckpt"
  run e2e-deploy python3 tools/deploy.py configs/retinanet_r50_fpn_mabn.py "$ckpt" \
    --out $work/folded.pth --size 800 1333 --iters 20 --device cuda
fi
[ -z "$quick" ] && run tests-workflow python3 -m pytest -q -p no:cacheprovider tests \
  --deselect tests/test_kernels.py::test_kernels_under_the_triton_interpreter
log "logs in $out"
