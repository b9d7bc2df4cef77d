#!/usr/bin/env bash
# Debian's chromium and its chromedriver for the dashboard's browser tests (tests/integration/
# test_dashboard*.py, Selenium from the `test` extra). Nothing is downloaded besides the Debian packages:
# no browser build of Selenium's or Playwright's own. Installs only when one is missing and we are root
# with apt-get; otherwise says what to run (the tests then skip locally, and fail under CI).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: ${missing[*]} missing; as root on Debian/Ubuntu: apt-get install -y chromium chromium-driver" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "install-browser: installed $(chromium --version 2>/dev/null | head -1)"
