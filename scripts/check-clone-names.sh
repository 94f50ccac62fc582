#!/usr/bin/env bash
# CI proof that the README's test command passes whatever the clone folder is called: clones this
# checkout (its HEAD commit) as <tmp>/loba, <tmp>/ComfyUI-LOBA and <tmp>/ComfyUI/custom_nodes/loba, and
# in each runs, through scripts/test.sh, a full collection of the suite plus a fast part of it. In the
# custom_nodes case the ComfyUI tests must find the enclosing ComfyUI and run. Exits 1 on any failure.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/loba-clones.XXXXXX")"
fast=(tests/test_layout.py tests/engine/cli)
failures=()

finish() {
  rm -rf "$tmp"
  # test.sh re-pointed the venv's editable install at each clone: point it back at this checkout.
  "$here/scripts/setup-env.sh" >/dev/null || echo "check-clone-names: could not re-point the venv at $here" >&2
}
trap finish EXIT

fail() {
  failures+=("$1")
  echo "check-clone-names: FAILED: $1 (output above)" >&2
}

# test.sh in the clone; its output goes to our stdout and to $tmp/last.log for the checks on it.
in_clone() {
  local clone="$1"; shift
  (cd "$clone" && env LOBA_NO_COMFYUI_FETCH=1 "$@") 2>&1 | tee "$tmp/last.log"
  return "${PIPESTATUS[0]}"
}

check_clone() {  # label clone-folder [pytest paths that must run, beyond the fast ones]
  local label="$1" clone="$2"; shift 2
  echo "check-clone-names: == $label: $clone"
  git clone -q "$here" "$clone" || { fail "$label: git clone"; return; }
  in_clone "$clone" bash scripts/test.sh --collect-only -q || fail "$label: collecting the suite (pytest --collect-only)"
  in_clone "$clone" bash scripts/test.sh "${fast[@]}" "$@" || fail "$label: ${fast[*]} $*"
}

# A ComfyUI work tree around custom_nodes/: the real one's top-level entries as symlinks, so
# find-comfyui.sh finds it as the enclosing ComfyUI. (The node tests point ComfyUI's model/output
# folders at their own temp folders, so nothing is written through the symlinks.)
make_comfy_tree() {
  local real="$1" tree="$2" entry
  mkdir -p "$tree/custom_nodes"
  for entry in "$real"/*; do
    [ "$(basename "$entry")" = custom_nodes ] || ln -s "$entry" "$tree/$(basename "$entry")"
  done
}

check_custom_nodes() {
  local real tree="$tmp/ComfyUI" label="ComfyUI/custom_nodes/loba" node_tests=tests/nodes/test_nodes.py
  if ! real="$("$here/scripts/find-comfyui.sh")"; then
    echo "check-clone-names: NO ComfyUI found (see test.sh's line above): the $label case is SKIPPED" >&2
    return
  fi
  make_comfy_tree "$real" "$tree"
  # Unset COMFYUI_PATH: the clone must find the ComfyUI that encloses it, by itself.
  COMFYUI_PATH="" check_clone "$label" "$tree/custom_nodes/loba" "$node_tests"
  grep -q "test.sh: ComfyUI found at $tree:" "$tmp/last.log" || fail "$label: test.sh did not find the enclosing ComfyUI $tree"
  # The node tests must have run: no skip line, and a passed count in pytest's summary.
  if grep -qiE "skipped|NO ComfyUI" "$tmp/last.log" || ! grep -qE "[0-9]+ passed" "$tmp/last.log"; then
    fail "$label: $node_tests did not run (skipped or no passes)"
  fi
}

check_clone loba "$tmp/loba"
check_clone ComfyUI-LOBA "$tmp/ComfyUI-LOBA"
check_custom_nodes
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'check-clone-names: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "check-clone-names: all clone names pass"
