#!/usr/bin/env bash
# Makes sure the browser tests have Debian's Chromium (installed with apt-get when missing and we are root).
# Never fails the test run: without Chromium the browser tests skip with one loud line.
set -uo pipefail
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser-deps: installing chromium with apt-get (browser tests)" >&2
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >/tmp/loba-apt-chromium.log 2>&1 \
    || echo "browser-deps: apt-get could not install chromium (see /tmp/loba-apt-chromium.log)" >&2
fi
exit 0
