#!/usr/bin/env bash
# Fetches the pinned ComfyUI release (the tag in scripts/comfyui-version) into ~/comfy/ComfyUI the way a
# user would, so the ComfyUI tests run on a fresh machine. Prints the path on success; exits 1 when it
# cannot (offline, no git, timed out): bounded by LOBA_COMFYUI_FETCH_TIMEOUT seconds, git's output in a log.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="$(tr -d '[:space:]' < "$here/scripts/comfyui-version")"
url="${LOBA_COMFYUI_URL:-https://github.com/comfyanonymous/ComfyUI}"  # overridable for mirrors (and tests)
limit="${LOBA_COMFYUI_FETCH_TIMEOUT:-300}"
dest="$HOME/comfy/ComfyUI"  # comfy-cli's default workspace, where find-comfyui.sh looks last
log="$HOME/.cache/loba/comfyui-fetch.log"

if [ -e "$dest" ]; then
  # Something that is not a ComfyUI work tree (find-comfyui.sh said so): the user's, never overwritten.
  echo "fetch-comfyui: $dest exists but is not a ComfyUI work tree; not touching it" >&2
  exit 1
fi
mkdir -p "$(dirname "$dest")" "$(dirname "$log")"
echo "fetch-comfyui: cloning ComfyUI $tag from $url into $dest (at most ${limit}s; log: $log)" >&2
# Into a sibling first: an interrupted clone never leaves a half tree where find-comfyui.sh looks.
partial="$(mktemp -d "$dest.partial.XXXXXX")"
if GIT_TERMINAL_PROMPT=0 timeout "$limit" git clone -q --depth 1 --branch "$tag" "$url" "$partial" >"$log" 2>&1 \
   && [ -f "$partial/comfy/sd.py" ] && [ -f "$partial/main.py" ] && mv "$partial" "$dest"; then
  echo "$dest"
  exit 0
fi
rm -rf "$partial"
exit 1
