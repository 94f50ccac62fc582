#!/usr/bin/env bash
# The test command: sets up its environment on a fresh machine, then runs ruff and the whole suite
# (arguments go to pytest). Without a ComfyUI it fetches the pinned one (scripts/fetch-comfyui.sh; opt out
# with LOBA_NO_COMFYUI_FETCH=1) BEFORE building the venv, whose key includes ComfyUI's requirements.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
tag="$(tr -d '[:space:]' < "$here/scripts/comfyui-version")"
why=""
if comfy="$("$here/scripts/find-comfyui.sh")"; then
  :
elif [ -n "${COMFYUI_PATH:-}" ]; then
  why="COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI work tree (no comfy/sd.py + main.py)"
elif [ "${LOBA_NO_COMFYUI_FETCH:-}" = "1" ]; then
  why="none found, and LOBA_NO_COMFYUI_FETCH=1"
elif ! comfy="$("$here/scripts/fetch-comfyui.sh")"; then
  why="none found, and fetching ComfyUI $tag failed (offline? git's output: ~/.cache/loba/comfyui-fetch.log)"
fi
if [ -z "$why" ]; then
  echo "test.sh: ComfyUI found at $comfy: the ComfyUI tests will run"
  export COMFYUI_PATH="$comfy"
else
  echo "test.sh: NO ComfyUI: $why. The ComfyUI tests will be SKIPPED. To run them, set COMFYUI_PATH to a" \
       "ComfyUI work tree or run: git clone --depth 1 --branch $tag https://github.com/comfyanonymous/ComfyUI ~/comfy/ComfyUI"
fi
venv="$("$here/scripts/setup-env.sh")"
bash "$here/scripts/browser-deps.sh"
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest -q "$@"
