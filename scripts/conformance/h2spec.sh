#!/usr/bin/env bash
# scripts/conformance/h2spec.sh: h2spec, the HTTP/2 conformance suite
# (pinned in tools/go.mod), against Ferry's TLS + HTTP/2 listener, in front
# of examples/hello-wsgi. Every test h2spec fails must be listed, with its
# reason, in testdata/conformance/h2spec.expected: a failure not listed
# fails this script; a listed one that passes is reported, to be removed.
#
# It builds ferry, makes a self-signed certificate (Go's
# crypto/tls/generate_cert.go), starts ferry --ssl on a free loopback port,
# runs `go tool -modfile=tools/go.mod h2spec -t -k` with a JUnit report and
# compares the report's failures with the expected file. About 30 seconds.
#
# Usage: scripts/conformance/h2spec.sh     Knobs: KEEP=1 keeps the work dir
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
expected=testdata/conformance/h2spec.expected
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-h2spec.XXXXXX")
chmod 755 "$tmp" # the app's user (nobody, when run as root) reads the app in it
ferry_pid=
cleanup() {
	if [[ -n $ferry_pid ]]; then
		kill "$ferry_pid" 2>/dev/null || true
		wait "$ferry_pid" 2>/dev/null || true
	fi
	if [[ -n ${KEEP:-} ]]; then
		echo "h2spec: work dir kept: $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

go build -o "$tmp/ferry" ./cmd/ferry
(cd "$tmp" && go run "$(go env GOROOT)/src/crypto/tls/generate_cert.go" --host 127.0.0.1,localhost --ecdsa-curve P256 2>/dev/null)
cp -r examples/hello-wsgi "$tmp/app"
chmod -R a+rX "$tmp/app"

"$tmp/ferry" start "$tmp/app" --address 127.0.0.1 --port 0 --ssl \
	--ssl-certificate "$tmp/cert.pem" --ssl-certificate-key "$tmp/key.pem" \
	--instance-registry-dir "$tmp/registry" --log-file "$tmp/ferry.log" &
ferry_pid=$!

# The port is in the "front listening" line; the app must answer before
# h2spec starts.
port=
for _ in $(seq 300); do
	if ! kill -0 "$ferry_pid" 2>/dev/null; then
		echo "h2spec: ferry exited; its log:" >&2
		cat "$tmp/ferry.log" >&2
		exit 1
	fi
	if [[ -z $port ]]; then
		port=$(grep -o 'urls=\[https://127.0.0.1:[0-9]*' "$tmp/ferry.log" 2>/dev/null | grep -o '[0-9]*$' || true)
	fi
	if [[ -n $port ]] && curl -ksf -o /dev/null "https://127.0.0.1:$port/"; then
		break
	fi
	sleep 0.2
done
if [[ -z $port ]] || ! curl -ksf -o /dev/null "https://127.0.0.1:$port/"; then
	echo "h2spec: ferry did not answer over HTTPS within 60s; its log:" >&2
	cat "$tmp/ferry.log" >&2
	exit 1
fi

echo "h2spec: against ferry on https://127.0.0.1:$port (examples/hello-wsgi)"
# h2spec exits non-zero when a test fails: the report decides.
go tool -modfile=tools/go.mod h2spec -t -k -h 127.0.0.1 -p "$port" -o 5 -j "$tmp/report.xml" >"$tmp/h2spec.out" 2>&1 || true
if [[ ! -s $tmp/report.xml ]]; then
	echo "h2spec: no report; its output:" >&2
	cat "$tmp/h2spec.out" >&2
	exit 1
fi

python3 - "$tmp/report.xml" "$expected" <<'PY'
import sys
import xml.etree.ElementTree as ET

report, expected_file = sys.argv[1], sys.argv[2]
expected = {}
for line in open(expected_file, encoding="utf-8"):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    test_id, _, reason = line.partition(" ")
    expected[test_id] = reason.strip()

total, failed = 0, {}
for suite in ET.parse(report).getroot().iter("testsuite"):
    for i, case in enumerate(suite.iter("testcase"), 1):
        # The id h2spec itself takes to run one test: package/index.
        test_id = "%s/%d" % (suite.get("package"), i)
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed[test_id] = case.get("classname")

new = sorted(set(failed) - set(expected))
fixed = sorted(set(expected) - set(failed))
print("h2spec: %d tests, %d passed, %d failed (%d of them expected)"
      % (total, total - len(failed), len(failed), len(failed) - len(new)))
for test_id in fixed:
    print("h2spec: %s now passes; remove it from %s" % (test_id, expected_file))
for test_id in new:
    print("h2spec: NEW FAILURE %s: %s" % (test_id, failed[test_id]), file=sys.stderr)
if new:
    print("h2spec: fix them, or list them in %s with the reason they are deliberate" % expected_file, file=sys.stderr)
    sys.exit(1)
PY
