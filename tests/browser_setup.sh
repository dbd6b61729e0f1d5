#!/usr/bin/env bash
# Installs Debian's Chromium for the demo's browser test (tests/test_demo_browser.py) unless it is there.
# Needs root to install (CI runs as root on a fresh Debian machine); about 50 s with a cold apt cache.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
chromium="${CHROMIUM_PATH:-/usr/lib/chromium/chromium}"

if [ -x "$chromium" ]; then
    echo "chromium present: $chromium"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium missing at $chromium and not root: run 'apt-get install -y chromium' as root" >&2
    exit 1
fi
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium installed: $("$chromium" --version 2>/dev/null || echo "$chromium")"
