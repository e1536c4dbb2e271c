#!/usr/bin/env bash
# bench/front.sh: the HTTP front's figures (issue 5), each measured side by
# side with its baseline on this machine:
#
#   1. requests/second of a normal client (wrk) against a pool of 2, with no
#      slow clients and then with 200 slow readers connected (each asked for
#      8 MiB with a 4 KiB receive buffer, and reads nothing);
#   2. Ferry's peak RSS (VmRSS of the core, sampled every 50 ms) during a
#      1 GiB upload, with Content-Length and chunked, against its idle RSS;
#   3. HTTPS hello world over HTTP/1.1 and HTTP/2 (h2load), beside plain
#      HTTP/1.1: the app's hello (examples/hello-wsgi, 2 processes) and a
#      turbocache hit (the front alone).
#
# Usage: bench/front.sh      (root only to apt-get wrk, nghttp2-client)
# Knobs: DURATION [10] seconds per run, SLOW [200], CONNECTIONS [50],
#        KEEP_TMP [0], RESULTS_DIR [bench/results]
# Output: markdown on stdout, appended to $RESULTS_DIR/front-YYYY-MM-DD.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-10}
SLOW=${SLOW:-200}
CONNECTIONS=${CONNECTIONS:-50}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
PY=/usr/bin/python3

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
	[[ $(id -u) == 0 ]] || die "need root to apt-get install ${need[*]}"
	apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-front.XXXXXX")
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
cp -r "$repo/testdata/wsgi/echo" "$tmp/echo"
cp -r "$repo/examples/hello-wsgi" "$tmp/hello"
chmod -R a+rX "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

# start NAME APP ARGS...: runs ferry, sets PID and PORT (of the first
# listener), waits until it answers.
start() {
	local name=$1 app=$2
	shift 2
	"$tmp/ferry" start "$app" --address 127.0.0.1 --port 0 --python "$PY" --environment production \
		--instance-registry-dir "$tmp/reg-$name" "$@" >"$tmp/$name.log" 2>&1 &
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
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
wrk_rps() { wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
# h2 ARGS...: one h2load run; prints "REQ/S 2XX NON2XX".
h2() {
	h2load "$@" -c"$CONNECTIONS" -D "$DURATION" --warm-up-time 2 2>&1 | awk '
		/^finished in/ {gsub(",", "", $4); rps = $4}
		/^status codes:/ {ok = $3; bad = $5 + $7 + $9}
		END {print rps, ok, bad}'
}
# spooled PID: MiB of response spill files the process holds open.
spooled() {
	find "/proc/$1/fd" -lname '*resp-*' -exec stat -L -c %s {} + 2>/dev/null | awk '{s += $1} END {printf "%.0f", s/1048576}'
}

out=$tmp/results.md
{
	echo "## Run $(date -u '+%Y-%m-%d %H:%M:%S') UTC"
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM; load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Clients and Ferry share the CPUs. ferry $(cd "$repo" && git rev-parse --short HEAD), $(go version | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(h2load --version | head -1)."
	echo
} >"$out"

# ------------------------------------------------- 1. slow readers ----
log "1. a normal client with and without $SLOW slow readers (pool of 2)"
start slow "$tmp/echo" --max-pool-size 2 --min-instances 2 --max-request-queue-size 0 --response-buffer-memory 64k
curl -fsS "http://127.0.0.1:$PORT/" >/dev/null
base=$(wrk_rps "http://127.0.0.1:$PORT/")
"$PY" - "$PORT" "$SLOW" >"$tmp/slow-readers.out" 2>&1 <<'EOF' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big?n=8388608 HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(s)
print("connected", len(conns), flush=True)
time.sleep(3600)
EOF
readers=$!
pids+=("$readers")
until grep -q connected "$tmp/slow-readers.out" 2>/dev/null; do sleep 0.2; done
sleep 15 # the app answers each reader into Ferry's spool
spooled=$(spooled "$PID")
with=$(wrk_rps "http://127.0.0.1:$PORT/")
rss=$(rss_kib "$PID")
kill "$readers"
stop
{
	echo "### A normal client while $SLOW slow readers hang on"
	echo
	echo "\`ferry start testdata/wsgi/echo --max-pool-size 2 --min-instances 2 --max-request-queue-size 0 --response-buffer-memory 64k\`;"
	echo "normal client: \`wrk -t2 -c$CONNECTIONS -d${DURATION}s /\` (hello world from the app); slow readers: $SLOW connections, each \`GET /big?n=8388608\` with SO_RCVBUF 4096, never read."
	echo
	echo "| | req/s |"
	echo "| --- | ---: |"
	echo "| no slow clients | $base |"
	echo "| $SLOW slow readers connected | $with |"
	echo
	echo "With the readers connected: Ferry's RSS $(mib "$rss") MiB; ${spooled} MiB of their responses in (unlinked) spill files."
	echo
} >>"$out"

# --------------------------------------------------- 2. upload RSS ----
log "2. peak RSS during a 1 GiB upload"
start upload "$tmp/echo" --max-pool-size 1
curl -fsS "http://127.0.0.1:$PORT/" >/dev/null
idle=$(rss_kib "$PID")
head -c 1073741824 /dev/zero >"$tmp/1g"
upload() { # FILE (- for stdin: chunked); prints the peak RSS in KiB and the app's answer
	local peak=0 r cpid
	curl -fsS -X POST -T "$1" "http://127.0.0.1:$PORT/upload" >"$tmp/upload.out" <"$tmp/1g" &
	cpid=$!
	while kill -0 "$cpid" 2>/dev/null; do
		r=$(rss_kib "$PID")
		((r > peak)) && peak=$r
		sleep 0.05
	done
	wait "$cpid"
	echo "$peak $(tr -d '\n ' <"$tmp/upload.out")"
}
read -r peak_cl ans_cl < <(upload "$tmp/1g")
read -r peak_ch ans_ch < <(upload -)
rm -f "$tmp/1g"
stop
{
	echo "### Ferry's RSS during a 1 GiB upload"
	echo
	echo "\`ferry start testdata/wsgi/echo --max-pool-size 1\` (defaults: --request-buffer-memory 128k, --client-max-body-size 1g); \`curl -X POST -T 1GiB /upload\` (Content-Length) and \`curl -X POST -T - /upload <1GiB\` (chunked); VmRSS of the core every 50 ms."
	echo
	echo "| | Ferry RSS |"
	echo "| --- | ---: |"
	echo "| idle, after one request | $(mib "$idle") MiB |"
	echo "| peak, 1 GiB with Content-Length | $(mib "$peak_cl") MiB |"
	echo "| peak, 1 GiB chunked | $(mib "$peak_ch") MiB |"
	echo
	echo "The app's answers: \`$ans_cl\`, \`$ans_ch\`."
	echo
} >>"$out"

# ------------------------------------------------------ 3. HTTPS ----
log "3. HTTPS hello world over HTTP/1.1 and HTTP/2"
tls=(--ssl --ssl-certificate "$tmp/cert.pem" --ssl-certificate-key "$tmp/key.pem")
declare -A res
for app in hello cached; do
	dir=$tmp/hello path=/
	if [[ $app == cached ]]; then dir=$tmp/echo path="/counted?cc=max-age%3D3600"; fi
	common=(--max-pool-size 2 --min-instances 2 --max-request-queue-size 0)
	start "plain-$app" "$dir" "${common[@]}"
	url="http://127.0.0.1:$PORT$path"
	curl -fsS "$url" >/dev/null
	res[$app-h1c]=$(h2 --h1 "$url")
	stop
	start "tls-$app" "$dir" "${common[@]}" "${tls[@]}"
	url="https://127.0.0.1:$PORT$path"
	curl -fsSk "$url" >/dev/null
	res[$app-h1]=$(h2 --h1 "$url")
	res[$app-h2]=$(h2 -m 10 "$url")
	stop
done
cell() { set -- ${res[$1]}; echo "$1"; }
codes() { set -- ${res[$1]}; echo "$2 2xx, $3 other"; }
{
	echo "### HTTPS hello world"
	echo
	echo "\`ferry start APP --max-pool-size 2 --min-instances 2 --max-request-queue-size 0 --ssl --ssl-certificate cert.pem --ssl-certificate-key key.pem\` (ECDSA P-256; TLS 1.3 negotiated); plain: the same without --ssl."
	echo "\`h2load --h1 -c$CONNECTIONS -D $DURATION --warm-up-time 2 URL\` for HTTP/1.1, \`h2load -m 10 -c$CONNECTIONS -D $DURATION --warm-up-time 2 URL\` for HTTP/2 (10 streams per connection). app: examples/hello-wsgi, 2 Python processes; cache hit: a turbocached response (testdata/wsgi/echo \`/counted?cc=max-age%3D3600\`), so the front alone."
	echo
	echo "| | plain HTTP/1.1 | HTTPS HTTP/1.1 | HTTPS HTTP/2 |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| app hello world, req/s | $(cell hello-h1c) | $(cell hello-h1) | $(cell hello-h2) |"
	echo "| cache hit, req/s | $(cell cached-h1c) | $(cell cached-h1) | $(cell cached-h2) |"
	echo
	echo "Responses (measured part of each run): app $(codes hello-h1c) / $(codes hello-h1) / $(codes hello-h2); cache $(codes cached-h1c) / $(codes cached-h1) / $(codes cached-h2)."
	echo
	echo "Command: \`bench/front.sh\` (DURATION=$DURATION SLOW=$SLOW CONNECTIONS=$CONNECTIONS)"
	echo
} >>"$out"

cat "$out"
mkdir -p "$RESULTS_DIR"
results=$RESULTS_DIR/front-$(date -u +%Y-%m-%d).md
[[ -f $results ]] || printf '# The HTTP front: slow clients, upload memory, HTTPS\n\nGenerated by `bench/front.sh`; one section per run.\n\n' >"$results"
cat "$out" >>"$results"
log "appended to $results"
