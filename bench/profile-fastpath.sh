#!/usr/bin/env bash
# bench/profile-fastpath.sh: where the CPU of a turbocache hit and of a small
# static file goes in Ferry's core (issue 21, "cache hits and static files"):
#
#   per path (/cached of bench/apps/wsgi, and a 4 KiB file in its public/):
#   1. CPU per request of the core (utime+stime from /proc ÷ wrk's requests)
#      and req/s under `wrk -t1 -c$CONNECTIONS -d$DURATION`, the access log
#      ON (Ferry's default: to its log file), 2 app processes;
#      meanwhile a CPU profile of the core from the admin socket's
#      /debug/pprof/profile;
#   2. `strace -c -f` of the core for STRACE_SECS under the same load:
#      syscalls per request (counts are exact; strace slows what it traces).
#
# Usage: sudo bench/profile-fastpath.sh   Knobs: PATHS ["/cached /4k.bin"]
#   DURATION [10s] STRACE_SECS [5] CONNECTIONS [50] KEEP_TMP [0]
#   RESULTS_DIR [bench/results] LABEL [""] (a word for the results' heading)
# Output: $RESULTS_DIR/profile-fastpath-YYYY-MM-DD.md (appended).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PATHS=${PATHS:-"/cached /4k.bin"}
DURATION=${DURATION:-10s}
STRACE_SECS=${STRACE_SECS:-5}
LABEL=${LABEL:-}
need wrk have wrk
need curl have curl
need jq have jq
need strace have strace
need golang-go have go
install_needed
bench_init
build_ferry
HZ=$(getconf CLK_TCK)
out=$RESULTS_DIR/profile-fastpath-$(date -u +%F).md
report=$tmp/report.md
emit() { echo "$*" >>"$report"; }

ticks_of() { # pid... -> utime+stime (clock ticks)
	local p s t=0
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}
us_per() { awk -v t="$1" -v r="$2" -v hz="$HZ" 'BEGIN{ if (r > 0) printf "%.2f", t/hz/r*1e6; else print "?" }'; }
reqs_of() { awk '/ requests in /{print $1}' "$1"; }

app=$tmp/app
cp -r "$repo/bench/apps/wsgi" "$app"
mkdir -p "$app/public"
head -c 4096 /dev/urandom >"$app/public/4k.bin"
chown -R nobody:nogroup "$app"
chmod -R a+rX "$app"

PORT=18790
while port_busy "$PORT"; do PORT=$((PORT + 1)); done
mkdir -p "$tmp/reg"
"$tmp/ferry" start "$app" --port "$PORT" --address 127.0.0.1 -e production --python "$PY" \
	--max-pool-size 2 --min-instances 2 \
	--log-file "$tmp/ferry.log" --instance-registry-dir "$tmp/reg" </dev/null >"$tmp/ferry.out" 2>&1 &
MAIN_PID=$!
track ferry "$MAIN_PID"
for ((i = 0; i < READY_TIMEOUT * 4; i++)); do
	[[ $(http_code "$PORT" /cached) == 200 ]] && break
	sleep 0.25
done
[[ $(http_code "$PORT" /cached) == 200 ]] || die "Ferry did not answer 200"
INST=$(sed -n '/ instance=/{s/.* instance=\([^ ]*\).*/\1/p;q}' "$tmp/ferry.log")
# shellcheck disable=SC2046
track ferry $(descendants "$MAIN_PID")

emit "## bench/profile-fastpath.sh${LABEL:+ ($LABEL)}, $(date -u '+%F %H:%M') UTC"
emit ""
emit "Machine: $(nproc) CPUs, shared with other work. Ferry $(ferry_build_line). Command: \`PATHS=\"$PATHS\" DURATION=$DURATION STRACE_SECS=$STRACE_SECS CONNECTIONS=$CONNECTIONS bench/profile-fastpath.sh\`. Ferry: \`ferry start APP -e production --max-pool-size 2 --min-instances 2\` (access log on, to its log file); load \`wrk -t1 -c$CONNECTIONS\`."
emit ""
emit "| path | req/s | core µs CPU/req | load before |"
emit "| --- | ---: | ---: | --- |"
DETAIL=""
for p in $PATHS; do
	id=$(tr -c 'a-z0-9\n' _ <<<"$p")
	wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT$p" >/dev/null 2>&1 || true
	la=$(loadavg)
	c0=$(ticks_of "$MAIN_PID")
	secs=$(dur_s "$DURATION")
	curl -s -H "Authorization: Bearer $(cat "$INST/admin.token")" --unix-socket "$INST/admin.sock" \
		"http://x/debug/pprof/profile?seconds=$((secs - 2))" -o "$tmp/$id.cpu.pprof" &
	ppid=$!
	timeout $((secs + 30)) wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$PORT$p" >"$tmp/$id.wrk" 2>&1 || true
	c1=$(ticks_of "$MAIN_PID")
	wait "$ppid" || true
	r=$(reqs_of "$tmp/$id.wrk")
	rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$tmp/$id.wrk")
	emit "| $p | $rps | $(us_per $((c1 - c0)) "$r") | $la |"
	DETAIL+=$'\n'"#### $p: core CPU profile (\`go tool pprof -top\`, $((secs - 2)) s under the load)"$'\n\n```\n'"$(go tool pprof -top -nodecount=40 "$tmp/ferry" "$tmp/$id.cpu.pprof" 2>/dev/null | head -50)"$'\n```\n'
	DETAIL+=$'\n'"#### $p: cumulative, Ferry's own code"$'\n\n```\n'"$(go tool pprof -top -cum -nodecount=60 -focus 'ferry' "$tmp/ferry" "$tmp/$id.cpu.pprof" 2>/dev/null | grep -E 'ferry|flat' | head -40)"$'\n```\n'
	timeout $((STRACE_SECS + 10)) strace -c -f -o "$tmp/$id.strace" -p "$MAIN_PID" &
	spid=$!
	sleep 0.5
	timeout $((STRACE_SECS + 30)) wrk -t1 -c"$CONNECTIONS" -d"${STRACE_SECS}s" "http://127.0.0.1:$PORT$p" >"$tmp/$id.strace.wrk" 2>&1 || true
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	r=$(reqs_of "$tmp/$id.strace.wrk")
	DETAIL+=$'\n'"#### $p: \`strace -c -f -p\` the core ($r requests while attached; calls/req = calls ÷ requests)"$'\n\n```\n'"$(awk -v r="$r" 'NR<=2 || /^-/ {print; next} NF>=5 && $NF != "total" {printf "%s   calls/req %.2f\n", $0, $4/(r>0?r:1); next} {print}' "$tmp/$id.strace" | head -24)"$'\n```\n'
done
emit "$DETAIL"
mkdir -p "$RESULTS_DIR"
{
	echo
	cat "$report"
} >>"$out"
cat "$report"
log "appended to $out"
ok=1
