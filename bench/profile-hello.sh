#!/usr/bin/env bash
# bench/profile-hello.sh: where the CPU of one hello-world request goes under
# Ferry (issue 21, "profile first"), per app type (rack wsgi asgi node):
#
#   1. split   Ferry with 1 app process under `wrk -t1 -c4 -d$DURATION`: CPU
#              time (utime+stime, /proc) of the core and of the app process
#              divided by the requests, and wrk's own; meanwhile a CPU profile
#              of the core from the admin socket's /debug/pprof/profile.
#   2. strace  `strace -c -f` attached to the core, then to the app process,
#              for STRACE_SECS each under the same load: syscalls per request
#              (strace slows what it traces: counts are exact, times are not).
#   3. loader  (rack, wsgi, asgi) the same app wrapped in a profiler started
#              on the first request in the worker, so that it covers the
#              loader's request loop as well as the app: stackprof (wall
#              mode, 50 µs, Debian's ruby-stackprof; its cpu mode's timer
#              fires at the kernel's tick, far too coarse here) for Rack, a
#              10 000-request window; cProfile for WSGI and ASGI (wall-clock
#              and deterministic: it inflates many small calls; read it as a
#              ranking), cumulative, dumped every 2000 requests.
#
# Usage: sudo bench/profile-hello.sh   Knobs: TYPES ["rack wsgi asgi node"]
#   DURATION [10s] STRACE_SECS [5] KEEP_TMP [0] RESULTS_DIR [bench/results]
# Output: $RESULTS_DIR/profile-hello-YYYY-MM-DD.md (appended).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TYPES=${TYPES:-"rack wsgi asgi node"}
DURATION=${DURATION:-10s}
STRACE_SECS=${STRACE_SECS:-5}
need wrk have wrk
need curl have curl
need jq have jq
need strace have strace
need ruby-stackprof have stackprof
need ruby-rack /usr/bin/ruby -e 'require "rack"'
need golang-go have go
install_needed
bench_init
build_ferry
HZ=$(getconf CLK_TCK)
out=$RESULTS_DIR/profile-hello-$(date -u +%F).md
report=$tmp/report.md
emit() { echo "$*" >>"$report"; }
mkdir -p "$tmp/prof"
chmod 777 "$tmp/prof"

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
us_per() { awk -v t="$1" -v r="$2" -v hz="$HZ" 'BEGIN{ if (r > 0) printf "%.1f", t/hz/r*1e6; else print "?" }'; }
reqs_of() { awk '/ requests in /{print $1}' "$1"; }

# app_src type [profiled] -> a copy of the example, owned by nobody
app_src() {
	local type=$1 prof=${2:-} d=$tmp/app-$1${2:+-prof}
	rm -rf "$d"
	cp -r "$repo/examples/hello-$type" "$d"
	if [[ -n $prof ]]; then
		case $type in
		rack)
			cat >"$d/config.ru" <<'EOF'
# frozen_string_literal: true
require "stackprof"
body = "Hello from Ferry!\n"
hello = lambda { |_env| [200, { "content-type" => "text/plain; charset=utf-8", "content-length" => body.bytesize.to_s }, [body]] }
n = 0
run lambda { |env|
  StackProf.start(mode: :wall, interval: 50) if n.zero?
  n += 1
  if (n % 10_000).zero?
    StackProf.stop
    StackProf.results("#{ENV.fetch("PROF_OUT")}.#{Process.pid}.dump")
    StackProf.start(mode: :wall, interval: 50)
  end
  hello.call(env)
}
EOF
			;;
		wsgi)
			cat >>"$d/passenger_wsgi.py" <<'EOF'


import cProfile as _cProfile, os as _os
_hello, _prof, _n = application, None, 0


def application(environ, start_response):  # noqa: F811
    global _prof, _n
    if _prof is None:
        _prof = _cProfile.Profile()
        _prof.enable()
    _n += 1
    if _n % 2000 == 0:
        _prof.disable()
        _prof.dump_stats("%s.%d.pstats" % (_os.environ["PROF_OUT"], _os.getpid()))
        _prof.enable()
    return _hello(environ, start_response)
EOF
			;;
		asgi)
			cat >>"$d/asgi.py" <<'EOF'


import cProfile as _cProfile, os as _os
_hello, _prof, _n = application, None, 0


async def application(scope, receive, send):  # noqa: F811
    global _prof, _n
    if scope["type"] == "http":
        if _prof is None:
            _prof = _cProfile.Profile()
            _prof.enable()
        _n += 1
        if _n % 2000 == 0:
            _prof.disable()
            _prof.dump_stats("%s.%d.pstats" % (_os.environ["PROF_OUT"], _os.getpid()))
            _prof.enable()
    await _hello(scope, receive, send)
EOF
			;;
		esac
	fi
	chown -R nobody:nogroup "$d"
	echo "$d"
}

PORT=18700
start_ferry() { # id app [args]
	local id=$1 app=$2
	shift 2
	while port_busy "$PORT"; do PORT=$((PORT + 1)); done
	mkdir -p "$tmp/reg-$id"
	"$tmp/ferry" start "$app" --port "$PORT" --address 127.0.0.1 -e production --python "$PY" \
		--access-log off --max-pool-size 1 --min-instances 1 \
		--log-file "$tmp/$id.log" --instance-registry-dir "$tmp/reg-$id" "$@" </dev/null >"$tmp/$id.out" 2>&1 &
	MAIN_PID=$!
	track "$id" "$MAIN_PID"
	local i
	for ((i = 0; i < READY_TIMEOUT * 4; i++)); do
		[[ $(http_code "$PORT") == 200 ]] && break
		sleep 0.25
	done
	[[ $(http_code "$PORT") == 200 ]] || die "$id: Ferry did not answer 200"
	INST=$(sed -n '/ instance=/{s/.* instance=\([^ ]*\).*/\1/p;q}' "$tmp/$id.log")
	APP_PID=$(curl -s -H "Authorization: Bearer $(cat "$INST/read.token")" --unix-socket "$INST/admin.sock" http://x/pool |
		jq -r '.apps[].processes[]? | select(.state == "serving") | .pid' | head -1)
	# shellcheck disable=SC2046
	track "$id" $(descendants "$MAIN_PID")
}
wrk_load() { # seconds outfile
	timeout $(($1 + 30)) wrk -t1 -c4 -d"${1}s" --latency "http://127.0.0.1:$PORT/" >"$2" 2>&1 || true
}

emit "## bench/profile-hello.sh, $(date -u '+%F %H:%M') UTC"
emit ""
emit "Machine: $(nproc) CPUs, shared with other work (load average at the start $(loadavg)). Ferry $(ferry_build_line). Command: \`TYPES=\"$TYPES\" DURATION=$DURATION STRACE_SECS=$STRACE_SECS bench/profile-hello.sh\`. Ferry: \`ferry start APP -e production --access-log off --max-pool-size 1 --min-instances 1\`; load \`wrk -t1 -c4\` on GET /."
emit ""
emit "### CPU per request (µs of utime+stime / requests)"
emit ""
emit "| type | req/s | core µs/req | app process µs/req | wrk µs/req | load |"
emit "| --- | ---: | ---: | ---: | ---: | --- |"
declare -A DETAIL=()
for type in $TYPES; do
	log "$type: split + pprof"
	id=$type
	start_ferry "$id" "$(app_src "$type")"
	wrk_load 2 "$tmp/$id.warm"
	la=$(loadavg)
	c0=$(ticks_of "$MAIN_PID")
	a0=$(ticks_of "$APP_PID")
	secs=$(dur_s "$DURATION")
	curl -s -H "Authorization: Bearer $(cat "$INST/admin.token")" --unix-socket "$INST/admin.sock" \
		"http://x/debug/pprof/profile?seconds=$((secs - 2))" -o "$tmp/prof/$id.cpu.pprof" &
	ppid=$!
	timeout $((secs + 30)) wrk -t1 -c4 -d"$DURATION" --latency "http://127.0.0.1:$PORT/" >"$tmp/$id.wrk" 2>&1 &
	wpid=$!
	sleep 0.2
	w0=$(ticks_of "$wpid" $(children "$wpid"))
	wait "$wpid" || true
	c1=$(ticks_of "$MAIN_PID")
	a1=$(ticks_of "$APP_PID")
	wait "$ppid" || true
	r=$(reqs_of "$tmp/$id.wrk")
	rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$tmp/$id.wrk")
	# wrk's own CPU: from `time`-like accounting is not available after exit;
	# bash's times would include everything, so it is left as its req/s share.
	emit "| $type | $rps | $(us_per $((c1 - c0)) "$r") | $(us_per $((a1 - a0)) "$r") | – | $la |"
	DETAIL[$type]="#### $type: core CPU profile (\`go tool pprof -top\`, $((secs - 2)) s under the load)"$'\n\n```\n'"$(go tool pprof -top -nodecount=35 "$tmp/ferry" "$tmp/prof/$id.cpu.pprof" 2>/dev/null | head -45)"$'\n```\n'
	log "$type: strace core, then app"
	for who in core app; do
		pid=$MAIN_PID
		[[ $who == app ]] && pid=$APP_PID
		timeout $((STRACE_SECS + 10)) strace -c -f -o "$tmp/$id.strace.$who" -p "$pid" &
		spid=$!
		sleep 0.5
		wrk_load "$STRACE_SECS" "$tmp/$id.strace.$who.wrk"
		kill -INT "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		r=$(reqs_of "$tmp/$id.strace.$who.wrk")
		DETAIL[$type]+=$'\n'"#### $type: \`strace -c -f -p\` the $who ($r requests while attached; calls/req = calls ÷ requests)"$'\n\n```\n'"$(awk -v r="$r" 'NR<=2 || /^-/ {print; next} NF>=5 && $NF != "total" {printf "%s   calls/req %.2f\n", $0, $4/(r>0?r:1); next} {print}' "$tmp/$id.strace.$who" | head -30)"$'\n```\n'
	done
	stop_server "$id" "$MAIN_PID"
	if [[ $type != node ]]; then
		log "$type: loader profile"
		id=$type-prof
		start_ferry "$id" "$(app_src "$type" prof)" --envvar "PROF_OUT=$tmp/prof/$type"
		wrk_load 8 "$tmp/$id.wrk"
		stop_server "$id" "$MAIN_PID"
		f=$(ls -t "$tmp/prof/$type".*.* 2>/dev/null | head -1 || true)
		if [[ -z $f ]]; then
			DETAIL[$type]+=$'\n'"(no loader profile written)"$'\n'
		elif [[ $type == rack ]]; then
			DETAIL[$type]+=$'\n'"#### $type: loader + app in the worker (stackprof wall, 50 µs interval, a 10 000-request window; IO.select is waiting)"$'\n\n```\n'"$(stackprof --text --limit 30 "$f" 2>&1 | head -45)"$'\n```\n'
		else
			DETAIL[$type]+=$'\n'"#### $type: loader + app in the worker (cProfile, cumulative from the first request, by own time; poll/select is waiting)"$'\n\n```\n'"$($PY -c 'import pstats,sys; pstats.Stats(sys.argv[1]).sort_stats("tottime").print_stats(30)' "$f" 2>&1 | sed -n '1,50p')"$'\n```\n'
		fi
	fi
done
emit ""
for type in $TYPES; do
	emit "${DETAIL[$type]:-}"
done
mkdir -p "$RESULTS_DIR"
{
	echo
	cat "$report"
} >>"$out"
cat "$report"
log "appended to $out"
ok=1
