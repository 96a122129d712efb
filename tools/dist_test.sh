#!/usr/bin/env bash
# Distributed evaluation through torchrun; see dist_train.sh for the multi-node variables.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
set -euo pipefail
source "$(dirname "$0")/dist_common.sh"
[ $# -ge 3 ] || dist_usage "CONFIG CHECKPOINT NPROC [test.py args...]"
[ -f "$2" ] || { echo "dist_test.sh: checkpoint '$2' not found" >&2; exit 2; }
CONFIG=$1; CHECKPOINT=$2; shift 2
dist_check_args "$CONFIG" "$@"
NPROC=$1; shift
dist_run test.py "$CONFIG" "$CHECKPOINT" "$@"
