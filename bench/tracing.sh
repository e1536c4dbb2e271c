#!/usr/bin/env bash
# bench/tracing.sh: what OpenTelemetry tracing costs on the request path
# (issue 18). Requests/second of wrk against Ferry serving hello world
# (examples/hello-wsgi, 2 processes), with tracing
#
#   off        no endpoint (the default);
#   sampled    every request traced (OTEL_TRACES_SAMPLER=always_on) and
#              exported over OTLP/HTTP to a local sink;
#   unsampled  tracing on, no request sampled (always_off): the spans are
#              not recorded, the trace context still goes to the app;
#
# the three alternated RUNS times (the machine drifts; alternating spreads
# it), and the Go benchmark of the request path alone
# (BenchmarkProxyHelloTracing: ns/op and allocations).
#
# The sink (python3's http.server, answering every export with an empty
# ExportTraceServiceResponse) stands in for a collector; when it falls
# behind, the SDK's batch queue drops spans rather than slow requests down,
# as it would in production.
#
# Usage: bench/tracing.sh   (root only to apt-get wrk)
# Knobs: DURATION [10] seconds per run, RUNS [3], CONNECTIONS [50],
#        BENCHTIME [2s], KEEP_TMP [0], RESULTS_DIR [bench/results]
# Output: markdown on stdout, appended to $RESULTS_DIR/tracing-YYYY-MM-DD.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-50}
BENCHTIME=${BENCHTIME:-2s}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
PY=/usr/bin/python3

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

if ! command -v wrk >/dev/null; then
	[[ $(id -u) == 0 ]] || die "need root to apt-get install wrk"
	apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-tracing.XXXXXX")
chmod 755 "$tmp"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	if [[ $KEEP_TMP == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building ferry"
(cd "$repo" && go build -o "$tmp/ferry" ./cmd/ferry)
cp -r "$repo/examples/hello-wsgi" "$tmp/hello"
chmod -R a+rX "$tmp"

# The OTLP/HTTP sink: counts export requests and answers each with an empty
# ExportTraceServiceResponse (zero protobuf bytes).
cat >"$tmp/sink.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    count = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        H.count += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
"$PY" "$tmp/sink.py" >"$tmp/sink.port" 2>"$tmp/sink.log" &
pids+=("$!")
for _ in $(seq 50); do [[ -s $tmp/sink.port ]] && break; sleep 0.1; done
SINK=http://127.0.0.1:$(head -1 "$tmp/sink.port")

# start MODE: runs ferry for MODE, sets PID and PORT, waits until it answers.
start() {
	local mode=$1 env=()
	case $mode in
	sampled) env=(OTEL_EXPORTER_OTLP_ENDPOINT="$SINK" OTEL_TRACES_SAMPLER=always_on) ;;
	unsampled) env=(OTEL_EXPORTER_OTLP_ENDPOINT="$SINK" OTEL_TRACES_SAMPLER=always_off) ;;
	esac
	env "${env[@]}" "$tmp/ferry" start "$tmp/hello" --address 127.0.0.1 --port 0 --python "$PY" --environment production \
		--access-log off --max-pool-size 2 --min-instances 2 \
		--instance-registry-dir "$tmp/reg-$mode" >"$tmp/$mode.log" 2>&1 &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 600); do
		PORT=$(sed -n 's/.*msg="ferry started".* listen=[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/$mode.log" | head -1)
		[[ -n $PORT ]] && break
		kill -0 "$PID" 2>/dev/null || die "ferry ($mode) exited: $(tail -5 "$tmp/$mode.log")"
		sleep 0.1
	done
	[[ -n $PORT ]] || die "ferry ($mode) did not start"
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && return 0
		sleep 0.1
	done
	die "ferry ($mode) does not answer"
}

stop() {
	kill -TERM "$PID" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$PID" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$PID" 2>/dev/null || true
}

# ticks PID: the core's CPU time (utime+stime, all threads) in clock ticks.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

modes=(off sampled unsampled)
declare -A rps cpu
for run in $(seq "$RUNS"); do
	for mode in "${modes[@]}"; do
		start "$mode"
		wrk -t2 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/" >/dev/null # warm-up
		t0=$(ticks "$PID")
		wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$tmp/wrk-$mode-$run.txt"
		t1=$(ticks "$PID")
		r=$(awk '/^Requests\/sec:/{print $2}' "$tmp/wrk-$mode-$run.txt")
		n=$(awk '/ requests in /{print $1}' "$tmp/wrk-$mode-$run.txt")
		# The core's CPU per request: robust to a busy machine, unlike req/s.
		c=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)/hz/n*1e6}')
		log "run $run, tracing $mode: $r req/s, core CPU $c µs/request"
		rps[$mode]+="$r "
		cpu[$mode]+="$c "
		stop
	done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }
median1() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }
range1() { tr ' ' '\n' | grep . | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.1f–%.1f", lo, hi}'; }
range() { tr ' ' '\n' | grep . | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f–%.0f", lo, hi}'; }

log "go benchmark of the request path"
gob=$(cd "$repo" && go test -run XXX -bench 'BenchmarkProxyHelloTracing' -benchtime "$BENCHTIME" -count "$RUNS" ./internal/server | grep '^Benchmark')

{
	echo "## Tracing cost, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo "Ferry $(git -C "$repo" rev-parse --short HEAD), hello-wsgi, 2 processes, wrk -t2 -c$CONNECTIONS -d${DURATION}s, $RUNS runs alternated."
	echo
	echo "| tracing | req/s (median) | min–max | vs off | core CPU µs/request (median) | min–max |"
	echo "| --- | --- | --- | --- | --- | --- |"
	off=$(echo "${rps[off]}" | median)
	for mode in "${modes[@]}"; do
		m=$(echo "${rps[$mode]}" | median)
		echo "| $mode | $m | $(echo "${rps[$mode]}" | range) | $(awk -v a="$m" -v b="$off" 'BEGIN{printf "%+.1f%%", (a-b)/b*100}') | $(echo "${cpu[$mode]}" | median1) | $(echo "${cpu[$mode]}" | range1) |"
	done
	echo
	echo "Request path alone (\`go test -bench BenchmarkProxyHelloTracing -benchtime $BENCHTIME -count $RUNS ./internal/server\`):"
	echo
	echo '```'
	echo "$gob"
	echo '```'
} | tee -a "$RESULTS_DIR/tracing-$(date -u +%Y-%m-%d).md"
