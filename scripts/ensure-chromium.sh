#!/usr/bin/env bash
# Headless Chromium for the Data Docs screenshot test (Debian's package). Best effort: the test
# skips with a clear reason when no Chromium is available.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq chromium >/dev/null 2>&1 \
    || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
    || echo "note: could not install chromium; the Data Docs screenshot test will be skipped" >&2
else
  echo "note: chromium not installed; the Data Docs screenshot test will be skipped" >&2
fi
exit 0
