#!/usr/bin/env bash
# Install the Debian packages a test suite needs, only those whose command is missing.
# Usage: ci/debian-tools.sh COMMAND[=PACKAGE] ...   e.g. prometheus chromium podman=podman
# Runs `apt-get update` at most once per call; prints one line per package installed.
set -euo pipefail
# Debian keeps PostgreSQL's server commands off PATH, in /usr/lib/postgresql/<version>/bin.
have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}
missing=()
for spec in "$@"; do
  cmd="${spec%%=*}"
  pkg="${spec#*=}"
  have "$cmd" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "ci/debian-tools.sh: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Several suites may install at once on a shared machine: wait for the dpkg lock, don't fail on it.
lock=(-o DPkg::Lock::Timeout=300)
apt-get "${lock[@]}" update -q >/dev/null
apt-get "${lock[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null
