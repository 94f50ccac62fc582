#!/usr/bin/env bash
# Prints the ComfyUI folder the tests use: $COMFYUI_PATH, else the ComfyUI enclosing this pack
# (custom_nodes/<pack>), else ~/comfy/ComfyUI (comfy-cli's default workspace). Exits 1 if none.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for candidate in "${COMFYUI_PATH:-}" "$(dirname "$(dirname "$here")")" "$HOME/comfy/ComfyUI"; do
  if [ -n "$candidate" ] && [ -f "$candidate/comfy/sd.py" ] && [ -f "$candidate/main.py" ]; then
    echo "$candidate"
    exit 0
  fi
done
exit 1
