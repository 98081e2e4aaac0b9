#!/usr/bin/env bash
# Install the Debian packages the full test suite drives for real: Postfix and swaks (real mail logs),
# Prometheus, promtool and amtool (scraping, rule tests). Safe to run again: installs only what is missing.
#   --if-possible   on a machine without root or apt-get, say what is missing and exit 0
#                   (the tests that need these programs then skip, each with its reason)
set -euo pipefail

# systemd (journalctl) and systemd-journal-remote build and read real journal files; bsdutils has logger.
PACKAGES=(postfix swaks libnet-ssleay-perl prometheus prometheus-alertmanager logrotate
          systemd systemd-journal-remote bsdutils curl openssl)
# A C compiler for the Postfix scanner that `pip install` builds (the Python headers come with Python).
PACKAGES+=(gcc libc6-dev)
# `make bench` adds the peers it measures against: EXTRA_PACKAGES="mtail prometheus-postfix-exporter".
# shellcheck disable=SC2206
PACKAGES+=(${EXTRA_PACKAGES:-})
# Node.js runs the Prometheus Operator schema check of the ServiceMonitor (tests/deploy_fixtures).
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

npm_fixtures() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/deploy_fixtures/servicemonitor"
  if command -v npm >/dev/null 2>&1 && [ ! -d "$dir/node_modules" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
}
trap npm_fixtures EXIT

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages missing: ${missing[*]} (tests that need them will be skipped)" >&2
  [ "${1:-}" = "--if-possible" ] && exit 0
  echo "run this script as root on Debian or Ubuntu to install them" >&2
  exit 1
fi

echo "installing: ${missing[*]}" >&2
# Postfix asks questions on install: answer them ahead (local only; the tests run their own instances).
printf '%s\n' "postfix postfix/main_mailer_type select Local only" \
              "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
