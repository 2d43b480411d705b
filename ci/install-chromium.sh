#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the offline documentation-page test
# (tests/integration/test_docs_page.py). Idempotent: does nothing when it is installed.
# Prints the binary's path and version.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=chromium

apt_install chromium
binary="$(command -v chromium || true)"
[ -n "$binary" ] || die "chromium is not on PATH after installing the Debian package"
log "$binary: $("$binary" --version 2>/dev/null || echo 'version unknown')"
