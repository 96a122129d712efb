#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, MMEngine's --launcher slurm.
#   [GPUS=16] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# srun's --kill-on-bad-exit=1 ends every task as soon as one fails, so a dead rank never leaves
# the others waiting in a collective.
set -euo pipefail
usage() { echo "usage: [GPUS=8] [GPUS_PER_NODE=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args...]" >&2; exit 2; }
[ $# -ge 4 ] || usage
PARTITION=$1; JOB_NAME=$2; CONFIG=$3; WORK_DIR=$4; shift 4
GPUS=${GPUS:-8}
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_train.sh: GPUS must be a positive integer, got '$GPUS'" >&2; exit 2; }
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}; CPUS_PER_TASK=${CPUS_PER_TASK:-5}
for v in GPUS_PER_NODE CPUS_PER_TASK; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "slurm_train.sh: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
[ -f "$CONFIG" ] || { echo "slurm_train.sh: config '$CONFIG' not found" >&2; exit 2; }
command -v srun >/dev/null || { echo "slurm_train.sh: srun not found: run this on a Slurm login node (or use tools/dist_train.sh)" >&2; exit 2; }
TOOLS=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$TOOLS/..:${PYTHONPATH:-}" srun -p "$PARTITION" --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  python -u "$TOOLS/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher slurm "$@"
