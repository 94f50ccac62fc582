#!/usr/bin/env bash
# The main job on a fresh machine: trains an "erase red" and a "small <-> large" slider on the embedded
# toy-world model (offline, CPU) and scores both: out/demo/<slider>/{slider.safetensors, loss.csv,
# eval/metrics.json, eval/grid.png} and out/demo/summary.json.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup-env.sh")"
"$venv/bin/loba" demo --out "${1:-$here/out/demo}"
