# Shared by dist_train.sh and dist_test.sh (sourced, not run).
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dist_usage() { echo "usage: bash tools/$(basename "$0") $1" >&2; exit 2; }

# CONFIG NPROC ...: the config must exist, NPROC and the node variables must be numbers
dist_check_args() {
  [ $# -ge 2 ] || dist_usage "CONFIG NPROC [args...]"
  [ -f "$1" ] || { echo "$(basename "$0"): config '$1' not found" >&2; exit 2; }
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): NPROC must be a positive integer (processes per node), got '$2'" >&2; exit 2; }
  [[ "$NNODES" =~ ^[1-9][0-9]*$ && "$NODE_RANK" =~ ^[0-9]+$ && "$NODE_RANK" -lt "$NNODES" ]] || {
    echo "$(basename "$0"): need NNODES >= 1 and 0 <= NODE_RANK < NNODES, got NNODES=$NNODES NODE_RANK=$NODE_RANK" >&2; exit 2; }
  [[ "$MASTER_PORT" =~ ^[0-9]+$ ]] || { echo "$(basename "$0"): MASTER_PORT must be a number, got '$MASTER_PORT'" >&2; exit 2; }
}

# SCRIPT ARGS...: torchrun with NPROC processes on this node, through normdet.cli.launch: a port in
# use is said before starting, a tool's error is printed once (not once per rank), any other
# failure in one line naming the rank. When one process dies, torchrun stops the others at once;
# a process that hangs makes its peers fail after the process-group timeout
# (env_cfg.dist_cfg.timeout, seconds).
dist_run() {
  local script=$1; shift
  PYTHONPATH="$TOOLS/..:${PYTHONPATH:-}" python -m normdet.cli.launch \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --master_port="$MASTER_PORT" --nproc_per_node="$NPROC" \
    "$TOOLS/$script" "$@" --launcher pytorch
}
