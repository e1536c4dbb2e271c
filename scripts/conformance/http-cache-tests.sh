#!/usr/bin/env bash
# scripts/conformance/http-cache-tests.sh: Mark Nottingham's HTTP cache
# suite (npm http-cache-tests, RFC 9111) against Ferry's turbocache.
#
# The suite's own origin (server/server.mjs) runs as a Ferry generic app
# (one process: the suite keeps its state in memory) with turbocaching on,
# the suite's client (cli.mjs) runs against Ferry, and the results are
# compared with testdata/conformance/http-cache-tests.expected.json: it
# fails on any test that passed there and no longer passes, and on any
# MUST-level (required) failure not listed there as deliberate.
#
# Usage:
#   scripts/conformance/http-cache-tests.sh            check Ferry (CI)
#   scripts/conformance/http-cache-tests.sh --update   rewrite the expected file from this run
#   scripts/conformance/http-cache-tests.sh --varnish  also run Debian's varnishd (default VCL)
#                                                      in front of the same origin, and print
#                                                      both runs' counts side by side
#   scripts/conformance/http-cache-tests.sh --id TEST  one test, verbose (the suite's debug output)
# Knobs: HCT_CACHE [.cache/http-cache-tests] where the npm package is kept,
#        KEEP_TMP [0], OUT [unset: a directory to copy the raw results and summaries to].
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/scripts/conformance
VERSION=0.4.5
HCT_CACHE=${HCT_CACHE:-$repo/.cache/http-cache-tests}
KEEP_TMP=${KEEP_TMP:-0}
expected=$repo/testdata/conformance/http-cache-tests.expected.json

update=0 varnish=0 only=
while (($#)); do
	case $1 in
	--update) update=1 ;;
	--varnish) varnish=1 ;;
	--id) only=$2; shift ;;
	*) echo "usage: $0 [--update] [--varnish] [--id TEST]" >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[%(%H:%M:%S)T] hct: %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

command -v node >/dev/null || die "node is needed (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is needed (apt-get install npm)"
command -v curl >/dev/null || die "curl is needed"

# The pinned package, installed once into the cache directory.
pkg=$HCT_CACHE/node_modules/http-cache-tests
if [[ ! -f $pkg/package.json ]] || ! grep -q "\"version\": \"$VERSION\"" "$pkg/package.json"; then
	log "installing http-cache-tests@$VERSION into $HCT_CACHE"
	mkdir -p "$HCT_CACHE"
	npm install --prefix "$HCT_CACHE" --no-audit --no-fund --no-save --loglevel=error \
		"http-cache-tests@$VERSION" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-hct.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

freeport() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
waitup() { # URL PID: the origin answers GET /config/… with 405 once it is up
	for _ in $(seq 200); do
		[[ $(curl -so /dev/null --max-time 1 -w '%{http_code}' "$1/config/probe" || true) == 405 ]] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# runsuite NAME BASE_URL: the raw results, then the summary.
runsuite() {
	local name=$1 base=$2
	if [[ -n $only ]]; then
		(cd "$pkg" && npm_config_base=$base npm_package_config_id=$only node --no-warnings cli.mjs)
		return
	fi
	log "running the suite against $name ($base)"
	local pass
	for pass in main apart; do
		# Bounded: a cache that never answers must fail the run, not hang it.
		timeout 300 node --no-warnings "$here/hct.mjs" run "$pkg" "$base" $pass >"$tmp/$name.$pass.raw.json" ||
			die "the suite's $pass pass against $name failed or took more than 300 s"
	done
	node "$here/hct.mjs" merge "$tmp/$name.main.raw.json" "$tmp/$name.apart.raw.json" >"$tmp/$name.raw.json"
	node "$here/hct.mjs" summarize "$pkg" "$tmp/$name.raw.json" >"$tmp/$name.summary.json"
}

# The origin as a generic app: the suite's server and the parts of lib/ it
# imports, copied so that the app's user (nobody, when this runs as root)
# can read them wherever the repository is.
app=$tmp/origin
mkdir -p "$app"
cp -r "$pkg/server" "$pkg/lib" "$pkg/package.json" "$app/"
cat >"$app/start.sh" <<'EOF'
#!/bin/sh
# The suite's server takes its settings from npm's environment.
export npm_config_port="$PORT" npm_config_protocol=http npm_config_pidfile=/dev/null
exec node --import ./keep-alive.mjs server/server.mjs
EOF
# Node closes a kept-alive connection after 5 idle seconds, racing any proxy
# that reuses it (the suite pauses 3 s between requests; Ferry's own Node
# loader turns the timeout off for the same reason). 15 s here: longer than
# a connection of the run stays idle, yet it still ends the test whose body
# runs to the close of the connection (an unknown transfer coding).
cat >"$app/keep-alive.mjs" <<'EOF'
import http from 'http'
const createServer = http.createServer
http.createServer = function (...args) {
  const s = createServer.apply(this, args)
  s.keepAliveTimeout = 15000
  return s
}
EOF
chmod -R a+rX "$app"

log "building ferry"
(cd "$repo" && go build -o "$tmp/ferry" ./cmd/ferry)

port=$(freeport)
"$tmp/ferry" start "$app" --address 127.0.0.1 --port "$port" \
	--app-type generic --app-start-command 'sh start.sh' \
	--min-instances 1 --max-pool-size 1 --concurrency-target 0 \
	--log-level "${FERRY_LOG_LEVEL:-warn}" --log-file "$tmp/ferry.log" &
pids+=($!)
waitup "http://127.0.0.1:$port" "${pids[-1]}" || { cat "$tmp/ferry.log" >&2; die "ferry did not come up"; }
runsuite ferry "http://127.0.0.1:$port"
[[ -n $only ]] && exit 0

if [[ $varnish == 1 ]]; then
	if ! command -v varnishd >/dev/null; then
		[[ $(id -u) == 0 ]] || die "need root to apt-get install varnish"
		log "installing varnish"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends varnish >/dev/null
	fi
	oport=$(freeport)
	(cd "$app" && PORT=$oport exec sh start.sh) >"$tmp/origin.log" 2>&1 &
	pids+=($!)
	waitup "http://127.0.0.1:$oport" "${pids[-1]}" || die "the origin did not come up"
	vport=$(freeport)
	# The builtin VCL: what Varnish does out of the box.
	varnishd -a "127.0.0.1:$vport" -b "127.0.0.1:$oport" -n "$tmp/varnish" -s malloc,64m \
		-P "$tmp/varnish.pid" >"$tmp/varnishd.log" 2>&1 || { cat "$tmp/varnishd.log" >&2; die "varnishd did not start"; }
	pids+=("$(cat "$tmp/varnish.pid")")
	waitup "http://127.0.0.1:$vport" "${pids[-1]}" || die "varnish did not come up"
	runsuite varnish "http://127.0.0.1:$vport"
	echo "http-cache-tests@$VERSION, $(date -u +%Y-%m-%d), $(varnishd -V 2>&1 | head -1)"
	echo
	node "$here/hct.mjs" table "ferry=$tmp/ferry.summary.json" "varnish=$tmp/varnish.summary.json"
else
	node "$here/hct.mjs" table "ferry=$tmp/ferry.summary.json"
fi

if [[ -n ${OUT:-} ]]; then
	mkdir -p "$OUT"
	cp "$tmp"/*.raw.json "$tmp"/*.summary.json "$OUT/"
fi

if [[ $update == 1 ]]; then
	mkdir -p "$(dirname "$expected")"
	node "$here/hct.mjs" expected "$tmp/ferry.summary.json" "$expected" >"$tmp/expected.json"
	mv "$tmp/expected.json" "$expected"
	log "wrote $expected"
	if grep -q TODO "$expected"; then log "give the reason of each new deliberate failure in $expected"; fi
	exit 0
fi
[[ -f $expected ]] || die "no $expected: run with --update first"
if ! node "$here/hct.mjs" check "$tmp/ferry.summary.json" "$expected"; then
	log "ferry's log:"
	grep -v '^$' "$tmp/ferry.log" | tail -20 >&2 || true
	exit 1
fi
log "ok"
