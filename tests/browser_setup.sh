#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the demo's browser test (tests/test_demo_browser.py),
# unless it is already there. Needs root (CI runs as root on a fresh Debian machine); about 30 s.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ -x /usr/lib/chromium/chromium ] || [ -n "${CHROMIUM_PATH:-}" ]; then
    echo "chromium present: ${CHROMIUM_PATH:-/usr/lib/chromium/chromium}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "chromium missing and not root: run 'apt-get install -y chromium' as root" >&2
    exit 1
fi
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium installed: $(/usr/lib/chromium/chromium --version 2>/dev/null || echo /usr/lib/chromium/chromium)"
