#!/usr/bin/env bash
# Creates (once) and prints the path of a virtual environment with everything LOBA's tests and CLI need.
# The venv lives outside the clone, keyed by the requirement files, so CI and reruns reuse it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

# torch and torchvision must be a matching pair: ComfyUI imports torchvision, and a mismatched one
# breaks transformers/diffusers imports. The host provides torch in real installs; this is for tests.
torch_pins="torch==2.15.0 torchvision==0.29.2"

comfy="$("$here/scripts/find-comfyui.sh" || true)"
key_files=("$here/requirements.txt" "$here/requirements-test.txt")
[ -n "$comfy" ] && [ -f "$comfy/requirements.txt" ] && key_files+=("$comfy/requirements.txt")
key="$( (echo "$torch_pins"; cat "${key_files[@]}") | sha256sum | cut -c1-12)"
venv="${LOBA_VENV:-$HOME/.cache/loba/venv-$key}"

if [ ! -f "$venv/.complete" ]; then
  echo "setup-env: building $venv (first run only)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" $torch_pins >&2
  "${pip[@]}" -r "$here/requirements.txt" -r "$here/requirements-test.txt" >&2
  if [ -n "$comfy" ] && [ -f "$comfy/requirements.txt" ]; then
    # ComfyUI's own requirements, minus the torch family (pinned above) and torchaudio (audio nodes only).
    grep -viE '^\s*(torch|torchvision|torchaudio)\s*([<>=!~].*)?$' "$comfy/requirements.txt" > "$venv/comfy-requirements.txt"
    "${pip[@]}" -r "$venv/comfy-requirements.txt" requests >&2
  fi
  touch "$venv/.complete"
fi
# The package itself, editable, so the `loba` command runs this checkout.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$here" >&2
echo "$venv"
