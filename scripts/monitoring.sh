#!/usr/bin/env bash
# Checks deploy/monitoring: the alert rules with promtool (syntax and their
# unit tests) and the dashboard as JSON. Installs Debian's prometheus
# package (promtool, and the prometheus binary that
# integration/monitoring_test.go runs) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "monitoring.sh: promtool/prometheus missing; apt-get install prometheus" >&2
		exit 1
	fi
	echo "== installing prometheus"
	apt-get update -qq
	# --no-install-recommends: no node exporter. The tests start their own
	# Prometheus, on a free port, with their own storage.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "== promtool check rules"
promtool check rules deploy/monitoring/ferry-alerts.yml
echo "== promtool test rules"
(cd deploy/monitoring && promtool test rules ferry-alerts.test.yml)
echo "== dashboard JSON"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' deploy/monitoring/ferry-dashboard.json
