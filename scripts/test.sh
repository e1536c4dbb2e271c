#!/usr/bin/env bash
# Runs every check CI runs: formatting, vet, and all tests (unit, fuzz seed
# corpora, and integration tests that drive the real ferry binary against
# real apps). Installs what the tests need from Debian when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real interpreters and frameworks the integration tests drive, from Debian.
missing=()
for pkg in python3 python3-flask python3-starlette ruby ruby-rack ruby-sinatra curl tmux nginx apache2; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm) # http-cache-tests comes from npm
if ((${#missing[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing ${missing[*]}; install them (apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "== installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Headless Chromium for the dashboard's browser test.
./scripts/chromium.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
# No function of the product longer than 100 lines (issue 20): a long one
# is a decision and its mechanism not yet told apart.
echo "== function length"
(cd tools && go run ./funclen ../cmd ../internal)
./scripts/monitoring.sh
echo "== go test -race"
go test -race -count=1 -timeout 25m ./...
echo "== http-cache-tests (the turbocache against RFC 9111's third-party suite)"
scripts/conformance/http-cache-tests.sh
echo "== Debian package (build, lintian, dpkg -i, serve, purge)"
./scripts/deb.sh
echo "== h2spec (HTTP/2 conformance of the TLS listener)"
./scripts/conformance/h2spec.sh

# Kubernetes manifests and Helm chart (Helm from tools/go.mod).
scripts/deploy.sh
