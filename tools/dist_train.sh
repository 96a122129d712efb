#!/usr/bin/env bash
# Distributed training through torchrun (MMEngine's --launcher pytorch); GPUs, or CPU processes
# with gloo on a machine without GPUs.
#   bash tools/dist_train.sh CONFIG NPROC [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) on every node, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash tools/dist_train.sh configs/retinanet_r50_fpn_mabn.py 8
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 bash tools/dist_train.sh configs/retinanet_r50_fpn_mabn.py 8
set -euo pipefail
source "$(dirname "$0")/dist_common.sh"
dist_check_args "$@"
CONFIG=$1; NPROC=$2; shift 2
dist_run train.py "$CONFIG" "$@"
