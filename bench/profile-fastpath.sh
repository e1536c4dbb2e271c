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
#   NGINX [0] (1: then nginx, configured as bench/run.sh does, 2 workers,
#   on the same paths: CPU per request of all its processes, with its
#   access log on and off, for reference)
#   FERRY_BIN [""] (a ferry binary to profile instead of building this tree;
#   to compare commits: build each, run this once per binary, in turn)
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
if [[ -n ${FERRY_BIN:-} ]]; then
	cp "$FERRY_BIN" "$tmp/ferry"
	FERRY_VERSION="$("$tmp/ferry" version 2>/dev/null | head -1)"
	FERRY_REV="$FERRY_BIN"
	FERRY_DIRTY=0
else
	build_ferry
fi
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

if [[ ${NGINX:-0} == 1 ]]; then
	need nginx have nginx
	install_needed
	emit "### nginx, same paths, same load (\`return 200\` for /cached, the file for /4k.bin; 2 workers, sendfile, as bench/run.sh)"
	emit ""
	emit "| access log | path | req/s | nginx µs CPU/req (all its processes) | load before |"
	emit "| --- | --- | ---: | ---: | --- |"
	for alog in on off; do
		d=$tmp/nginx-$alog
		mkdir -p "$d"
		if [[ $alog == on ]]; then al="access_log $d/access.log;"; else al="access_log off;"; fi
		NPORT=$((PORT + 1))
		while port_busy "$NPORT"; do NPORT=$((NPORT + 1)); done
		cat >"$d/nginx.conf" <<NGINX_CONF
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  $al
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NPORT;
    root $app/public;
    location = /cached {
      default_type "text/plain; charset=utf-8";
      add_header Cache-Control "public, max-age=60";
      return 200 "Hello from Ferry!\n";
    }
  }
}
NGINX_CONF
		nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
		NPID=$!
		track "nginx-$alog" "$NPID"
		for ((i = 0; i < 40; i++)); do
			[[ $(http_code "$NPORT" /cached) == 200 ]] && break
			sleep 0.25
		done
		# shellcheck disable=SC2046
		track "nginx-$alog" $(descendants "$NPID")
		for p in $PATHS; do
			wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$NPORT$p" >/dev/null 2>&1 || true
			la=$(loadavg)
			# shellcheck disable=SC2046
			c0=$(ticks_of "$NPID" $(descendants "$NPID"))
			timeout $(($(dur_s "$DURATION") + 30)) wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$NPORT$p" >"$tmp/nginx.wrk" 2>&1 || true
			# shellcheck disable=SC2046
			c1=$(ticks_of "$NPID" $(descendants "$NPID"))
			emit "| $alog | $p | $(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$tmp/nginx.wrk") | $(us_per $((c1 - c0)) "$(reqs_of "$tmp/nginx.wrk")") | $la |"
		done
		stop_server "nginx-$alog" "$NPID"
	done
	emit ""
fi
mkdir -p "$RESULTS_DIR"
{
	echo
	cat "$report"
} >>"$out"
cat "$report"
log "appended to $out"
ok=1
