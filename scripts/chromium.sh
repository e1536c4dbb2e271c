#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test
# (integration/dashboard_test.go, TestDashboardChromium), which skips with a
# message when it is missing. Called by scripts/test.sh before go test.
set -euo pipefail
if command -v chromium >/dev/null; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "chromium.sh: chromium is missing and this is not root; TestDashboardChromium will skip (apt-get install chromium)" >&2
	exit 0
fi
echo "== installing chromium (dashboard browser test)"
apt-get update -qq
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
	echo "chromium.sh: apt-get install chromium failed; TestDashboardChromium will skip" >&2
fi
