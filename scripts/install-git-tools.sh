#!/usr/bin/env bash
# git (with its http-backend CGI) and ssh-keygen (openssh-client) for the git-source tests
# (tests/integration/test_gitserver.py, tests/*/sources/): a real git HTTP server and SSH-signed commits.
# Installs only when one is missing and we are root with apt-get; otherwise says what to run.
set -euo pipefail
missing=()
command -v git >/dev/null 2>&1 && [ -x "$(git --exec-path)/git-http-backend" ] || missing+=(git)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-git-tools: ${missing[*]} missing; as root on Debian/Ubuntu: apt-get install -y ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-git-tools: installed ${missing[*]}"
