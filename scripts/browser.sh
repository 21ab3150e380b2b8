#!/usr/bin/env bash
set -euo pipefail
# The admin console's browser test drives Debian's chromium headless with
# chromedriver; install them when missing (CI runs this as root).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing chromium and chromium-driver (admin console browser test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: chromium or chromedriver is missing; run as root:" \
      "apt-get install -y chromium chromium-driver" >&2
  fi
fi
