#!/usr/bin/env bash
# bench/rolling-restart.sh: a rolling restart of Ferry under steady load.
#
# examples/hello-wsgi, copied to a temp dir, under Ferry with 4 processes
# (--min-instances 4 --max-pool-size 4 -e production --python /usr/bin/python3,
# smart spawning: Ferry's default for WSGI), loopback only. Each run:
#
#   1. start Ferry; wait for 4 serving processes (admin API);
#   2. wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency on /;
#   3. $RESTART_AT seconds into it: the app's passenger_wsgi.py is replaced by a
#      version answering "Hello from Ferry, v2! pid N", then
#      `ferry restart --rolling --instance INSTANCE_DIR` (timed);
#   4. after wrk: requests served, non-2xx, socket errors, latency; the pool
#      (admin API) sampled every 0.5 s during the load; then $CHECK_REQUESTS
#      requests, $CHECK_PARALLEL at a time, must all get the v2 text, and from
#      every one of the 4 processes.
#
# $RUNS runs, each on a fresh Ferry; an EXIT trap stops whatever is still
# running, even on failure. Shared helpers: bench/lib.sh.
#
# Usage: bench/rolling-restart.sh     (needs root only for apt-get)
# Environment knobs (defaults in brackets):
#   BASE_PORT [18121] (run r uses BASE_PORT+r-1)  RUNS [3]  DURATION [20s]
#   RESTART_AT [5]  THREADS [2]  CONNECTIONS [20]  CHECK_REQUESTS [40]
#   CHECK_PARALLEL [8]  KEEP_TMP [0]  RESULTS_DIR [bench/results]
#   SETTLE_MAX [30]  SETTLE_BUSY [20]  before each run, wait up to SETTLE_MAX s
#     for a 2 s window with under SETTLE_BUSY % CPU busy (others may be running tests)
#
# Output: a markdown table on stdout, also appended (with machine info and tool
# versions) to $RESULTS_DIR/rolling-restart-YYYY-MM-DD.md (UTC date).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-20}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BASE_PORT=${BASE_PORT:-18121}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
RESTART_AT=${RESTART_AT:-5}
CHECK_REQUESTS=${CHECK_REQUESTS:-40}
CHECK_PARALLEL=${CHECK_PARALLEL:-8}
APP_SRC=$repo/examples/hello-wsgi
PROCS=4
V1_TEXT='Hello from Ferry!'
V2_TEXT='Hello from Ferry, v2!'

need wrk have wrk
need curl have curl
need jq have jq
install_needed
have go >/dev/null || die "go is not installed"
[[ -x $PY ]] || die "$PY not found"
[[ -f $APP_SRC/passenger_wsgi.py ]] || die "$APP_SRC/passenger_wsgi.py not found"

bench_init
build_ferry

# the new version: same app, recognisable text, with the pid of the process
write_v2() { # app_dir
	cat >"$1/passenger_wsgi.py.new" <<EOF
"""hello-wsgi, version 2 (written by bench/rolling-restart.sh)."""
import os


def application(environ, start_response):
    body = ("$V2_TEXT pid %d\\n" % os.getpid()).encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
EOF
	mv "$1/passenger_wsgi.py.new" "$1/passenger_wsgi.py"
}
# log_epoch line: the time= of a Ferry log line as seconds since the epoch
log_epoch() {
	local t
	t=$(sed -n 's/^time=\([^ ]*\).*/\1/p' <<<"$1")
	[[ -n $t ]] && date -d "$t" +%s.%N
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

TABLE=$tmp/table.md
DETAILS=$tmp/details.md
: >"$TABLE"
: >"$DETAILS"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
all_ok=1

run_once() { # r
	local r=$1 name=rr$1 port=$((BASE_PORT + $1 - 1)) logf inst app body0
	port_busy "$port" && die "port $port is already in use"
	define_ferry_server "$name"
	log "== run $r: Ferry on 127.0.0.1:$port"
	ferry_launch "$name" "$port" "$APP_SRC" --min-instances "$PROCS" --max-pool-size "$PROCS" \
		-e production --python "$PY"
	logf=$LOGF
	app=$tmp/app-$name
	wait_ready "$name" "$port" "$MAIN_PID" "$logf"
	ferry_wait_serving "$name" "$PROCS" exact || die "run $r: the pool did not reach $PROCS processes"
	inst=$(ferry_instance "$name")
	# shellcheck disable=SC2046
	track "$name" $(${name}_app_pids)
	body0=$(curl -s --max-time 5 "http://127.0.0.1:$port/")
	[[ $body0 == "$V1_TEXT" ]] || die "run $r: unexpected text before the restart: $body0"
	local old_pids gen0
	old_pids=$(ferry_serving_pids "$name" | sort -n | paste -sd' ')
	gen0=$(ferry_pool "$name" | jq '.apps[0].generation')
	local load_before
	load_before=$(settle)
	log "run $r: old processes $old_pids (generation $gen0); $load_before"

	# the pool, every 0.5 s, every 0.05 s around the restart:
	# "t serving total generations states queued" (bounded)
	local poolf=$tmp/$name.pool
	(
		set +e
		end=$((SECONDS + $(dur_s "$DURATION") + 40))
		while ((SECONDS < end)) && [[ ! -e $tmp/$name.pool.stop ]]; do
			ferry_pool "$name" | jq -r --arg t "$(date +%s.%N)" '.apps[0] |
				"\($t) \([.processes[]? | select(.state == "serving")] | length) \(.processes | length) gen=\([.processes[]?.generation] | map(tostring) | join(",")) states=\([.processes[]?.state] | join(",")) queued=\(.queued)"' \
				>>"$poolf" 2>/dev/null
			if [[ -e $tmp/$name.pool.fast ]]; then sleep 0.05; else sleep 0.5; fi
		done
	) &
	local pool_pid=$!

	local wf=$tmp/$name.wrk.txt wrk_pid
	timeout $(($(dur_s "$DURATION") + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
		"http://127.0.0.1:$port/" >"$wf" 2>&1 &
	wrk_pid=$!
	sleep "$RESTART_AT"
	touch "$tmp/$name.pool.fast"

	local t0 t1 rc=0 rout=$tmp/$name.restart.out load_restart
	load_restart=$(loadavg)
	write_v2 "$app"
	log "run $r: passenger_wsgi.py now answers \"$V2_TEXT pid N\"; ferry restart --rolling (load average $load_restart)"
	t0=$(date +%s.%N)
	timeout 120 "$tmp/ferry" restart --rolling --instance "$inst" >"$rout" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	local took
	took=$(secs "$t0" "$t1")
	log "run $r: ferry restart exited $rc after ${took}s: $(tr '\n' ' ' <"$rout")"
	sleep 2
	rm -f "$tmp/$name.pool.fast"

	local wrc=0
	wait "$wrk_pid" || wrc=$?
	touch "$tmp/$name.pool.stop"
	wait "$pool_pid" 2>/dev/null || true
	((wrc == 0)) || {
		log "run $r: wrk failed (rc=$wrc):"
		cat "$wf" >&2
		die "wrk failed"
	}

	# restart duration according to Ferry's log
	local l_start l_end log_took=?
	l_start=$(grep 'msg=restarting' "$logf" | tail -1 || true)
	l_end=$(grep -E 'msg="rolling restart (finished|failed)' "$logf" | tail -1 || true)
	if [[ -n $l_start && -n $l_end ]]; then
		log_took=$(secs "$(log_epoch "$l_start")" "$(log_epoch "$l_end")")
	fi

	# after the load: every process is new and answers the v2 text
	local new_pids gens check_out n_v2 n_other served_pids covered i urls=() missing
	ferry_wait_serving "$name" "$PROCS" exact || true
	new_pids=$(ferry_serving_pids "$name" | sort -n | paste -sd' ')
	gens=$(ferry_pool "$name" | jq -r '[.apps[0].processes[]? | "\(.pid):gen\(.generation):\(.state)"] | join(" ")')
	# shellcheck disable=SC2046
	track "$name" $(${name}_app_pids)
	for ((i = 0; i < CHECK_REQUESTS; i++)); do urls+=("http://127.0.0.1:$port/"); done
	check_out=$tmp/$name.check
	: >"$check_out"
	for i in 1 2 3 4 5; do # more rounds only if some process was not reached
		curl -s --max-time 20 -Z --parallel-max "$CHECK_PARALLEL" "${urls[@]}" >>"$check_out" 2>/dev/null || true
		served_pids=$(sed -n "s/^$V2_TEXT pid \([0-9]*\)$/\1/p" "$check_out" | sort -un | paste -sd' ')
		missing=$(comm -23 <(tr ' ' '\n' <<<"$new_pids" | sort) <(tr ' ' '\n' <<<"$served_pids" | sort) | paste -sd' ')
		[[ -z $missing ]] && break
	done
	n_v2=$(grep -c "^$V2_TEXT pid " "$check_out" || true)
	n_other=$(grep -vc "^$V2_TEXT pid " "$check_out" || true)
	covered=$(wc -w <<<"$served_pids")
	local old_left
	old_left=$(comm -12 <(tr ' ' '\n' <<<"$old_pids" | sort) <(tr ' ' '\n' <<<"$new_pids" | sort) | paste -sd' ')
	local verdict="all $n_v2 v2, from $covered/$(wc -w <<<"$new_pids") processes"
	if ((n_other)) || [[ -n $missing || -n $old_left ]] || ((rc)); then
		verdict="**NO**: $n_v2 v2, $n_other other; processes reached $covered/$(wc -w <<<"$new_pids")${missing:+, never reached: $missing}${old_left:+, old processes still serving: $old_left}"
		all_ok=0
	fi
	local min_serving max_total
	min_serving=$(awk -v a="$t0" '$1>=a-0.5{print $2}' "$poolf" | sort -n | head -1)
	max_total=$(awk '{print $3}' "$poolf" | sort -n | tail -1)
	log "run $r: $(wrk_total "$wf") requests, non-2xx $(wrk_non2xx "$wf"), socket errors $(wrk_sockerr_detail "$wf"); check: $verdict"

	printf '| %s | %s | %s | %s | %s | %s | %s / %s | %s s (log: %s s) | %s | %s |\n' "$r" "$load_before" \
		"$(wrk_total "$wf")" "$(wrk_rps "$wf")" "$(wrk_non2xx "$wf")" "$(wrk_sockerr_detail "$wf")" \
		"$(wrk_p99 "$wf")" "$(wrk_lat_max "$wf")" "$took" "$log_took" "${min_serving:-?}" "$verdict" >>"$TABLE"

	{
		echo "### Run $r"
		echo
		echo "- port $port; instance $inst; before wrk (2 s window): $load_before; load average at the restart: $load_restart"
		echo "- before: processes $old_pids, generation $gen0, text \"$body0\""
		echo "- \`ferry restart --rolling --instance $inst\`: exit $rc after ${took}s: \`$(tr '\n' ' ' <"$rout" | sed 's/ *$//')\`"
		echo "- after: processes $new_pids ($gens)"
		echo "- check: $CHECK_REQUESTS-request round(s) of curl -Z --parallel-max $CHECK_PARALLEL: $n_v2 answers \"$V2_TEXT pid N\", $n_other other; pids seen: $served_pids"
		echo "- pool during the load (admin API every 0.5 s, every 0.05 s from the restart to 2 s after it; serving processes min after the restart began ${min_serving:-?}, most processes at once $max_total)"
		echo
		echo '```'
		echo "wrk:"
		sed 's/^/  /' "$wf"
		echo "Ferry log (restart-related lines):"
		grep -E 'msg=(restarting|"rolling restart|"process ready"|"preloader ready"|"stopping process"|"stopping idle preloader"|"spawn failed|"process exited)' "$logf" | cut -c1-220 | sed 's/^/  /'
		echo "pool samples (t serving total generations states queued), from 1 s before the restart:"
		awk -v a="$t0" '$1>=a-1' "$poolf" | awk -v a="$t0" '{ $1 = sprintf("%+.1fs", $1-a); print "  " $0 }' | head -n 80
		echo '```'
		echo
	} >>"$DETAILS"

	"${name}_stop"
	log "run $r: Ferry stopped"
	[[ -z $(alive_tracked "$name") ]] || die "$name processes still alive after stop: $(alive_tracked "$name" | tr '\n' ' ')"
	ferry_log_report "$name" "$wf" >>"$DETAILS"
	echo >>"$DETAILS"
}

for ((run = 1; run <= RUNS; run++)); do
	run_once "$run"
done

# ------------------------------------------------------------ report ----
header='| run | before wrk (2 s window) | requests (wrk) | req/s | non-2xx | socket errors c/r/w/t | latency p99 / max | rolling restart took | serving procs, min | after: GET / |
| ---: | --- | ---: | ---: | ---: | --- | --- | --- | ---: | --- |'
report=$tmp/report.md
{
	echo "## Run $started"
	echo
	echo "\`bench/rolling-restart.sh\`: examples/hello-wsgi (a copy) under \`ferry start APP --port PORT --address 127.0.0.1 --min-instances $PROCS --max-pool-size $PROCS -e production --python $PY\` (smart spawning),"
	echo "\`wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency\` on /; ${RESTART_AT}s into it passenger_wsgi.py is replaced by a v2 and \`ferry restart --rolling --instance INSTANCE_DIR\` runs. $RUNS runs, a fresh Ferry each."
	echo
	echo "$header"
	cat "$TABLE"
	echo
	echo "rolling restart took: wall time of \`ferry restart --rolling\` (it returns when the restart is done); log: from Ferry's \`msg=restarting\` to \`msg=\"rolling restart finished\"\`."
	echo "serving procs, min: fewest processes in state serving in the admin API's /pool, sampled every 0.05 s from the restart to 2 s after it, then every 0.5 s to the end of the load."
	echo "after: $CHECK_REQUESTS requests, $CHECK_PARALLEL at a time (more rounds if a process was not reached), after wrk ended; each must answer \"$V2_TEXT pid N\" and every serving process must be among the N."
	echo
	machine_line
	echo "wrk, curl and Ferry share the same CPUs; other work on the machine may add noise."
	echo
	echo "Versions: $(ferry_build_line);"
	echo "$(go_version); Python $(py_version); $(wrk_version); $(curl --version | head -1 | awk '{print $1, $2}')."
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` (RUNS=$RUNS DURATION=$DURATION RESTART_AT=$RESTART_AT THREADS=$THREADS CONNECTIONS=$CONNECTIONS CHECK_REQUESTS=$CHECK_REQUESTS CHECK_PARALLEL=$CHECK_PARALLEL BASE_PORT=$BASE_PORT)"
	echo
	cat "$DETAILS"
} >"$report"

out=$(results_append rolling-restart "rolling-restart: Ferry's rolling restart under load" "$report")

echo
echo "$header"
cat "$TABLE"
echo
log "details and versions appended to $out"
((all_ok)) || log "WARNING: at least one run did not end with every process serving the new version (see the table)"
ok=1
