#!/usr/bin/env bash
# README's first command: set up a fresh machine, then train SSDLite-DN-B on the embedded synthetic
# data (a short schedule: a few minutes on a 2-core CPU), evaluate it with pycocotools and print
# where the report is. Extra arguments go to tools/train.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
start=$(date +%s)
# --overwrite: the quick start may be run again into its own work dir (other runs refuse that)
bash tools/env.sh python tools/train.py configs/ssdlite_dnb_quickstart.py --overwrite "$@"
echo "[quickstart] trained and evaluated in $(( $(date +%s) - start )) s"
