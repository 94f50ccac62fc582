#!/usr/bin/env bash
# The test command: sets up its environment on a fresh machine, then runs ruff and the whole suite.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup-env.sh")"
cd "$here"
if comfy="$("$here/scripts/find-comfyui.sh")"; then
  echo "test.sh: ComfyUI found at $comfy: the ComfyUI tests will run"
  export COMFYUI_PATH="$comfy"
else
  echo "test.sh: NO ComfyUI FOUND (set COMFYUI_PATH or install ~/comfy/ComfyUI): the ComfyUI tests will be SKIPPED"
fi
bash "$here/scripts/browser-deps.sh"
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest -q "$@"
