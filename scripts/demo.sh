#!/usr/bin/env bash
# The main job on a fresh machine: builds a tiny SD1-architecture model offline and trains an erase
# slider on it with `loba train`, writing out/demo/slider.safetensors and out/demo/loss.csv.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup-env.sh")"
out="${1:-$here/out/demo}"
mkdir -p "$out"
[ -f "$out/tiny-sd1/model_index.json" ] || "$venv/bin/loba" make-tiny-model "$out/tiny-sd1"
"$venv/bin/loba" train "$here/examples/erase-tiny.toml" --model "$out/tiny-sd1" --out "$out"
