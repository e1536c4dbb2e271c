#!/usr/bin/env bash
# bench/ab.sh: two (or more) Ferry binaries on one app, measured in turn, so
# that each sees the machine's changing load alike: req/s, p99, and the CPU
# per request of the core and of its app processes (utime+stime from /proc
# over the run ÷ wrk's requests; far steadier than req/s on a shared
# machine). One line per binary and round; read the medians.
#
# Usage: sudo BINS="/path/a/ferry /path/b/ferry" APP=examples/hello-rack bench/ab.sh
# Knobs: BINS (required) APP [examples/hello-wsgi] URLPATH [/] ROUNDS [3]
#   DURATION [8s] WARMUP [2s] CONNECTIONS [50] THREADS [2] PROCESSES [2]
#   EXTRA [""] (more `ferry start` arguments) ENVS [""] (VAR=value ... for
#   the core, e.g. GOMAXPROCS=1)
# Output: stdout, and appended to $RESULTS_DIR/ab-YYYY-MM-DD.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -n ${BINS:-} ]] || die "BINS: the ferry binaries to compare"
APP=${APP:-$repo/examples/hello-wsgi}
URLPATH=${URLPATH:-/}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
PROCESSES=${PROCESSES:-2}
EXTRA=${EXTRA:-}
ENVS=${ENVS:-}
PORT=${PORT:-18777}
need wrk have wrk
need curl have curl
install_needed
bench_init
HZ=$(getconf CLK_TCK)
out=$RESULTS_DIR/ab-$(date -u +%F).md

# A copy of the app owned by nobody: Ferry run as root runs an app as the
# owner of its startup file.
app=$tmp/app
cp -r "$APP" "$app"
chown -R nobody "$app"
chmod -R a+rX "$app"

ticks() { # pid... -> utime+stime, clock ticks
	local p t=0 s
	for p in "$@"; do
		s=$(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + s))
	done
	echo "$t"
}
descendants() { # pid -> every process below it
	ps -e -o pid=,ppid= | awk -v c="$1" '{p[$1]=$2} END{for (k in p) {x=k; while ((x in p) && x != c && x > 1) x=p[x]; if (x == c && k != c) printf "%s ", k}}'
}
per_req() { awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN{ if (n > 0) printf "%.1f", t/hz*1e6/n; else print "?" }'; }

lines=()
for ((r = 1; r <= ROUNDS; r++)); do
	for b in $BINS; do
		mkdir -p "$tmp/reg"
		# shellcheck disable=SC2086 # ENVS, EXTRA: words
		env $ENVS "$b" start "$app" --port "$PORT" --address 127.0.0.1 -e production --python "$PY" \
			--access-log off --max-pool-size "$PROCESSES" --min-instances "$PROCESSES" \
			--instance-registry-dir "$tmp/reg" --log-file "$tmp/ferry.log" $EXTRA >/dev/null 2>&1 &
		core=$!
		track ab "$core"
		for _ in $(seq $((READY_TIMEOUT * 5))); do
			curl -sf -o /dev/null "http://127.0.0.1:$PORT$URLPATH" && break
			sleep 0.2
		done
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "http://127.0.0.1:$PORT$URLPATH" >/dev/null
		apps=$(descendants "$core")
		# shellcheck disable=SC2086
		track ab $apps
		c0=$(ticks "$core")
		# shellcheck disable=SC2086
		a0=$(ticks $apps)
		res=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT$URLPATH")
		c1=$(ticks "$core")
		# shellcheck disable=SC2086
		a1=$(ticks $apps)
		n=$(awk '/ requests in /{print $1}' <<<"$res")
		rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$res")
		p99=$(awk '$1=="99%"{print $2}' <<<"$res")
		line="| $b | $r | $rps | $p99 | $(per_req $((c1 - c0)) "$n") | $(per_req $((a1 - a0)) "$n") | $(cut -d' ' -f1-3 /proc/loadavg) |"
		echo "$line"
		lines+=("$line")
		stop_server ab "$core"
		rm -rf "$tmp/reg" "$tmp/ab.pids"
	done
done
{
	echo
	echo "## bench/ab.sh, $(date -u '+%F %H:%M') UTC"
	echo
	echo "Command: \`BINS=\"$BINS\" APP=$APP URLPATH=$URLPATH ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS THREADS=$THREADS PROCESSES=$PROCESSES${EXTRA:+ EXTRA=\"$EXTRA\"}${ENVS:+ ENVS=\"$ENVS\"} bench/ab.sh\` (\`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\`, access log off)."
	echo
	echo "| binary | round | req/s | p99 | core µs CPU/req | app processes µs CPU/req | load average |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	printf '%s\n' "${lines[@]}"
} >>"$out"
ok=1
log "appended to $out"
