#!/usr/bin/env bash
# Prints the ComfyUI folder the tests use: $COMFYUI_PATH when set (exits 1 if it is not a ComfyUI work
# tree: a wrong setting is reported, not silently replaced), else the ComfyUI enclosing this pack
# (custom_nodes/<pack>, or one folder deeper), else ~/comfy/ComfyUI (comfy-cli's default workspace).
# Exits 1 if none. The same rules as devtools/comfyui.py's find_comfyui, which the tests use.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${COMFYUI_PATH:-}" ]; then
  candidates=("$COMFYUI_PATH")
else
  parent="$(dirname "$here")"
  candidates=("$(dirname "$parent")" "$(dirname "$(dirname "$parent")")" "$HOME/comfy/ComfyUI")
fi
for candidate in "${candidates[@]}"; do
  if [ -f "$candidate/comfy/sd.py" ] && [ -f "$candidate/main.py" ]; then
    echo "$candidate"
    exit 0
  fi
done
exit 1
