#!/usr/bin/env bash
# bench/cache-hit.sh: turbocache hits, this tree against a base commit, on
# this machine, measured in alternation so that both see the same noise:
#
#   1. req/s of wrk against Ferry serving a cached response of a small
#      generic app (Python; the app is not involved in a hit): ROUNDS
#      rounds, each DURATION seconds per side, base and tree in turn;
#   2. ns/op of the Go benchmarks of the hit path (BenchmarkLookupHit in
#      internal/turbocache, BenchmarkCacheHit in internal/server, the whole
#      handler), -count 1 per round, in turn.
#
# Usage: bench/cache-hit.sh [BASE]     (BASE: a commit, default: where this branch left main)
# Knobs: DURATION [5] ROUNDS [5] CONNECTIONS [50] RESULTS_DIR [bench/results]
# Output: markdown on stdout, appended to $RESULTS_DIR/cache-hit-YYYY-MM-DD.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${1:-$(cd "$repo" && git merge-base main HEAD)}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-50}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
command -v wrk >/dev/null || die "wrk is needed (apt-get install wrk)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-cache-hit.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

base_rev=$(cd "$repo" && git rev-parse --short "$BASE")
tree_rev=$(cd "$repo" && git rev-parse --short HEAD)$(cd "$repo" && git diff --quiet HEAD -- . || echo "+dirty")
log "base $base_rev, tree $tree_rev"
mkdir -p "$tmp/base"
(cd "$repo" && git archive "$BASE") | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/ferry-base" ./cmd/ferry)
(cd "$repo" && go build -o "$tmp/ferry-tree" ./cmd/ferry)

mkdir -p "$tmp/app"
cat >"$tmp/app/server.py" <<'EOF'
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"hello world\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
EOF
chmod -R a+rX "$tmp/app"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # NAME → port
	local port
	port=$(freeport)
	"$tmp/ferry-$1" start "$tmp/app" --address 127.0.0.1 --port "$port" --app-type generic \
		--app-start-command 'python3 server.py' --log-level warn --access-log off >"$tmp/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		curl -fso /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.1
	done
	curl -fso /dev/null "http://127.0.0.1:$port/" || die "ferry-$1 did not come up: $(cat "$tmp/$1.log")"
	echo "$port"
}
base_port=$(start base)
tree_port=$(start tree)
wrk_rps() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
base_rps=() tree_rps=()
for i in $(seq "$ROUNDS"); do
	base_rps+=("$(wrk_rps "http://127.0.0.1:$base_port/")")
	tree_rps+=("$(wrk_rps "http://127.0.0.1:$tree_port/")")
	log "round $i: base ${base_rps[-1]} req/s, tree ${tree_rps[-1]} req/s"
done

gobench() { # DIR → "LookupHit CacheHit" ns/op
	(cd "$1" && go test -run '^$' -bench '^BenchmarkLookupHit$' -count 1 ./internal/turbocache 2>/dev/null | awk '/^BenchmarkLookupHit/ {print $3}') | tr '\n' ' '
	(cd "$1" && go test -run '^$' -bench '^BenchmarkCacheHit$' -count 1 ./internal/server 2>/dev/null | awk '/^BenchmarkCacheHit/ {print $3}')
}
base_lh=() tree_lh=() base_ch=() tree_ch=()
for i in $(seq "$ROUNDS"); do
	read -r a b <<<"$(gobench "$tmp/base")"
	base_lh+=("$a") base_ch+=("$b")
	read -r a b <<<"$(gobench "$repo")"
	tree_lh+=("$a") tree_ch+=("$b")
	log "go round $i: LookupHit base ${base_lh[-1]} tree ${tree_lh[-1]}, CacheHit base ${base_ch[-1]} tree ${tree_ch[-1]} ns/op"
done

mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/cache-hit-$(date -u +%Y-%m-%d).md
{
	echo "## turbocache hit, base $base_rev vs tree $tree_rev ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "\`bench/cache-hit.sh $BASE\`: $ROUNDS rounds in alternation; wrk -t2 -c$CONNECTIONS -d${DURATION}s on a cached"
	echo "12-byte response (Ferry and wrk share the machine's $(nproc) CPUs; load average before: $load); Go benchmarks -count 1 per round."
	echo "Medians (all runs)."
	echo
	echo "| | base $base_rev | tree $tree_rev |"
	echo "| --- | ---: | ---: |"
	echo "| cache hit, req/s (wrk) | $(printf '%s\n' "${base_rps[@]}" | median) (${base_rps[*]}) | $(printf '%s\n' "${tree_rps[@]}" | median) (${tree_rps[*]}) |"
	echo "| BenchmarkLookupHit, ns/op | $(printf '%s\n' "${base_lh[@]}" | median) (${base_lh[*]}) | $(printf '%s\n' "${tree_lh[@]}" | median) (${tree_lh[*]}) |"
	echo "| BenchmarkCacheHit, ns/op | $(printf '%s\n' "${base_ch[@]}" | median) (${base_ch[*]}) | $(printf '%s\n' "${tree_ch[@]}" | median) (${tree_ch[*]}) |"
	echo
} | tee -a "$out"
