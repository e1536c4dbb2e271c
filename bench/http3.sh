#!/usr/bin/env bash
# bench/http3.sh: HTTP/3 beside HTTP/2 and HTTP/1.1 over TLS (issue 17), on
# the same Ferry, the same app and the same turbocache hit:
#
#   - bench/h3load (Go: net/http for h1 and h2, quic-go for h3), the same
#     client for the three protocols, since Debian's h2load is built
#     without QUIC;
#   - h2load for h1 and h2 too, as a cross-check of the Go client's own
#     cost.
#
# Usage: bench/http3.sh      (root only to apt-get nghttp2-client, openssl)
# Knobs: DURATION [10] seconds per run, CONNECTIONS [50], STREAMS [10]
#        (requests in flight per h2/h3 connection), KEEP_TMP [0],
#        RESULTS_DIR [bench/results]
# Output: markdown on stdout, appended to $RESULTS_DIR/http3-YYYY-MM-DD.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
STREAMS=${STREAMS:-10}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
PY=/usr/bin/python3

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

need=()
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
	[[ $(id -u) == 0 ]] || die "need root to apt-get install ${need[*]}"
	apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-h3.XXXXXX")
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

log "building ferry and bench/h3load"
(cd "$repo" && go build -o "$tmp/ferry" ./cmd/ferry && go build -o "$tmp/h3load" ./bench/h3load)
cp -r "$repo/testdata/wsgi/echo" "$tmp/echo"
cp -r "$repo/examples/hello-wsgi" "$tmp/hello"
chmod -R a+rX "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# start NAME APP ARGS...: runs ferry with TLS, sets PID and PORT, waits
# until it serves.
start() {
	local name=$1 app=$2
	shift 2
	"$tmp/ferry" start "$app" --address 127.0.0.1 --port 0 --python "$PY" --environment production \
		--instance-registry-dir "$tmp/reg-$name" --access-log off \
		--ssl --ssl-certificate "$tmp/cert.pem" --ssl-certificate-key "$tmp/key.pem" "$@" >"$tmp/$name.log" 2>&1 &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 600); do
		PORT=$(sed -n 's/.*msg="ferry started".* listen=[^ ]*:\([0-9]*\) .*/\1/p' "$tmp/$name.log" | head -1)
		[[ -n $PORT ]] && return 0
		kill -0 "$PID" 2>/dev/null || die "ferry ($name) exited: $(tail -5 "$tmp/$name.log")"
		sleep 0.1
	done
	die "ferry ($name) did not start"
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }
# h2 ARGS...: one h2load run; prints "REQ/S 2XX NON2XX".
h2() {
	h2load "$@" -c"$CONNECTIONS" -D "$DURATION" --warm-up-time 2 2>&1 | awk '
		/^finished in/ {gsub(",", "", $4); rps = $4}
		/^status codes:/ {ok = $3; bad = $5 + $7 + $9}
		END {print rps, ok, bad}'
}
# go PROTO URL: one h3load run; prints "REQ/S 2XX OTHER".
gol() { "$tmp/h3load" -proto "$1" -c "$CONNECTIONS" -m "$STREAMS" -d "${DURATION}s" -warmup 2s -insecure "$2"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

out=$tmp/results.md
{
	echo "## Run $(date -u '+%Y-%m-%d %H:%M:%S') UTC"
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM; load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Clients and Ferry share the CPUs. ferry $(cd "$repo" && git rev-parse --short HEAD), $(go version | cut -d' ' -f3), $(h2load --version | head -1), quic-go $(cd "$repo" && go list -m -f '{{.Version}}' github.com/quic-go/quic-go); UDP buffers: rmem_max $(sysctl -n net.core.rmem_max), wmem_max $(sysctl -n net.core.wmem_max)."
	echo
} >"$out"

declare -A res cpu
for app in hello cached; do
	dir=$tmp/hello path=/
	if [[ $app == cached ]]; then dir=$tmp/echo path="/counted?cc=max-age%3D3600"; fi
	start "$app" "$dir" --max-pool-size 2 --min-instances 2 --max-request-queue-size 0
	url="https://127.0.0.1:$PORT$path"
	curl -fsSk "$url" >/dev/null
	for p in h1 h2 h3; do
		log "$app: h3load $p"
		t0=$(cpu_ticks "$PID")
		res[$app-go-$p]=$(gol "$p" "$url")
		cpu[$app-go-$p]=$(($(cpu_ticks "$PID") - t0))
	done
	log "$app: h2load h1, h2"
	res[$app-h2load-h1]=$(h2 --h1 "$url")
	res[$app-h2load-h2]=$(h2 -m "$STREAMS" "$url")
	stop
done
cell() { set -- ${res[$1]}; echo "$1"; }
codes() { set -- ${res[$1]}; echo "$2 2xx, $3 other"; }
# per1k KEY: Ferry's CPU milliseconds per 1000 requests during that run.
per1k() {
	set -- ${res[$1]} "${cpu[$1]}"
	awk -v rps="$1" -v t="$4" -v d="$DURATION" -v hz="$(getconf CLK_TCK)" 'BEGIN {n = rps * (d + 2); if (n > 0) printf "%.0f", t / hz * 1000 / n * 1000; else print "-"}'
}
{
	echo "### HTTP/3 beside HTTP/2 and HTTP/1.1 over TLS"
	echo
	echo "\`ferry start APP --max-pool-size 2 --min-instances 2 --max-request-queue-size 0 --access-log off --ssl --ssl-certificate cert.pem --ssl-certificate-key key.pem\` (ECDSA P-256, TLS 1.3; HTTP/3 on by default on the same port, UDP)."
	echo "bench/h3load: \`h3load -proto P -c $CONNECTIONS -m $STREAMS -d ${DURATION}s -warmup 2s URL\` ($CONNECTIONS connections; $STREAMS requests in flight on each for h2 and h3, one for h1). h2load: \`h2load --h1 -c$CONNECTIONS -D $DURATION --warm-up-time 2 URL\`, \`h2load -m $STREAMS -c$CONNECTIONS -D $DURATION --warm-up-time 2 URL\`."
	echo "app: examples/hello-wsgi, 2 Python processes; cache hit: a turbocached response (testdata/wsgi/echo \`/counted?cc=max-age%3D3600\`), so the front alone."
	echo
	echo "| req/s | HTTP/1.1 | HTTP/2 | HTTP/3 |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| app hello world, h3load | $(cell hello-go-h1) | $(cell hello-go-h2) | $(cell hello-go-h3) |"
	echo "| app hello world, h2load | $(cell hello-h2load-h1) | $(cell hello-h2load-h2) | — |"
	echo "| cache hit, h3load | $(cell cached-go-h1) | $(cell cached-go-h2) | $(cell cached-go-h3) |"
	echo "| cache hit, h2load | $(cell cached-h2load-h1) | $(cell cached-h2load-h2) | — |"
	echo
	echo "Ferry's CPU per 1000 requests during the h3load runs (utime+stime of the core, warm-up included; ms): app $(per1k hello-go-h1) / $(per1k hello-go-h2) / $(per1k hello-go-h3); cache hit $(per1k cached-go-h1) / $(per1k cached-go-h2) / $(per1k cached-go-h3) (HTTP/1.1 / HTTP/2 / HTTP/3)."
	echo
	echo "Responses (measured part): h3load app $(codes hello-go-h1) / $(codes hello-go-h2) / $(codes hello-go-h3); cache $(codes cached-go-h1) / $(codes cached-go-h2) / $(codes cached-go-h3). h2load app $(codes hello-h2load-h1) / $(codes hello-h2load-h2); cache $(codes cached-h2load-h1) / $(codes cached-h2load-h2)."
	echo
	echo "Command: \`bench/http3.sh\` (DURATION=$DURATION CONNECTIONS=$CONNECTIONS STREAMS=$STREAMS)"
	echo
} >>"$out"

cat "$out"
mkdir -p "$RESULTS_DIR"
results=$RESULTS_DIR/http3-$(date -u +%Y-%m-%d).md
[[ -f $results ]] || printf '# HTTP/3 beside HTTP/2 and HTTP/1.1\n\nGenerated by `bench/http3.sh`; one section per run.\n\n' >"$results"
cat "$out" >>"$results"
log "appended to $results"
