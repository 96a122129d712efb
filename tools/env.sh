#!/usr/bin/env bash
# Run a command inside normdet's cached environment (built by tools/setup_env.sh), from the repo
# root:   bash tools/env.sh python -m pytest tests
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$(bash "$here/tools/setup_env.sh" --print-venv)
if [ ! -f "$venv/.complete" ]; then
  echo "normdet's environment is not built yet ($venv): run  bash tools/setup_env.sh" >&2
  exit 1
fi
# this clone's normdet first, whichever clone the venv's editable install points at
export PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$here"
exec "$@"
