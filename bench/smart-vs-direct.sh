#!/usr/bin/env bash
# bench/smart-vs-direct.sh: Ferry's two spawn methods on a Flask app
# (testdata/wsgi/flask, Debian's python3-flask on /usr/bin/python3), 4 worker
# processes (--min-instances 4 --max-pool-size 5), loopback only:
#
#   1. memory: after a short warm-up load, the PSS (/proc/PID/smaps_rollup) of
#      the 4 workers, summed; with smart spawning also the preloader's, and the
#      total including it;
#   2. spawn time of one more worker: 4 × GET /sleep?s=$SLEEP_S keep the 4
#      workers busy, one more request queues, Ferry starts a 5th process; its
#      start-up time is the `startup=` of Ferry's `msg="process ready"` log
#      line. Also measured: how long the queued request took (client side).
#      Every request has its own query string (…&n=REP.I): Ferry's turbocache
#      (on by default) makes concurrent identical GETs of a URL it has not seen
#      wait for the first one's response, which would keep processes idle.
#      $SPAWN_REPS times, on one Ferry: --pool-idle-time 1 shrinks the pool
#      back to 4 between repetitions (waited for through the admin API).
#
# Each method gets its own Ferry, started, measured and stopped before the next;
# an EXIT trap stops whatever is still running, even on failure. Shared
# helpers: bench/lib.sh.
#
# Usage: bench/smart-vs-direct.sh     (needs root only for apt-get)
# Environment knobs (defaults in brackets):
#   PORT [18091]  METHODS ["smart direct"]  SPAWN_REPS [3]  SLEEP_S [2]
#   WARMUP [3s] (wrk -t2 -c8)  KEEP_TMP [0]  RESULTS_DIR [bench/results]
#   SETTLE_MAX [30]  SETTLE_BUSY [20]  before each warm-up, wait up to SETTLE_MAX s
#     for a 2 s window with under SETTLE_BUSY % CPU busy (others may be running tests)
#
# Output: markdown tables on stdout, also appended (with machine info and tool
# versions) to $RESULTS_DIR/smart-vs-direct-YYYY-MM-DD.md (UTC date).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PORT=${PORT:-18091}
METHODS=${METHODS:-"smart direct"}
SPAWN_REPS=${SPAWN_REPS:-3}
SLEEP_S=${SLEEP_S:-2}
WARMUP=${WARMUP:-3s}
APP_SRC=$repo/testdata/wsgi/flask
WORKERS=4

need wrk have wrk
need curl have curl
need jq have jq
need python3-flask "$PY" -c 'import flask'
install_needed
have go >/dev/null || die "go is not installed"
[[ -f $APP_SRC/passenger_wsgi.py ]] || die "$APP_SRC/passenger_wsgi.py not found"

bench_init
build_ferry

# to_ms DURATION: a Go duration as Ferry logs it (950µs, 4ms, 1.2s) -> ms
to_ms() {
	awk -v d="$1" 'BEGIN{
		if (d ~ /µs$|us$/) { sub(/µs$|us$/, "", d); printf "%.2f", d/1000 }
		else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.1f", d }
		else if (d ~ /s$/) { sub(/s$/, "", d); printf "%.1f", d*1000 }
		else printf "?" }'
}
logfield() { # line key -> value of key=value (unquoted) in a log line
	sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}
# sessions_sum name: open sessions over all processes (admin API)
sessions_sum() {
	ferry_pool "$1" | jq '[.apps[].processes[]?.sessions] | add // 0' 2>/dev/null || echo 0
}

MEM_TABLE=$tmp/mem.md
SPAWN_TABLE=$tmp/spawn.md
DETAILS=$tmp/details.md
: >"$MEM_TABLE"
: >"$SPAWN_TABLE"
: >"$DETAILS"
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

bench_method() { # smart|direct
	local m=$1 name=sd_$1 port=$PORT logf inst
	port_busy "$port" && die "port $port is already in use"
	define_ferry_server "$name"
	log "== Ferry, --spawn-method $m, on 127.0.0.1:$port"
	ferry_launch "$name" "$port" "$APP_SRC" --min-instances "$WORKERS" --max-pool-size $((WORKERS + 1)) \
		-e production --python "$PY" --spawn-method "$m" --pool-idle-time 1
	logf=$LOGF
	wait_ready "$name" "$port" "$MAIN_PID" "$logf"
	ferry_wait_serving "$name" "$WORKERS" exact || die "$m: the pool did not reach $WORKERS processes"
	inst=$(ferry_instance "$name")
	# shellcheck disable=SC2046
	track "$name" $(${name}_app_pids)
	log "$m: $WORKERS processes serving: $(ferry_serving_pids "$name" | tr '\n' ' ')(instance $inst)"

	# ---- memory
	local load_warm load_mem
	load_warm=$(settle)
	log "$m: warm-up wrk -t2 -c8 -d$WARMUP /  ($load_warm)"
	THREADS=2 CONNECTIONS=8 run_wrk "$port" "$WARMUP" "$tmp/$name.warmup.txt"
	# 8 connections on 4 single-request processes make requests queue, so Ferry
	# may grow to 5 during the warm-up; --pool-idle-time 1 shrinks it back.
	sleep 1
	ferry_wait_serving "$name" "$WORKERS" exact || die "$m: the pool did not shrink back to $WORKERS processes"
	sleep 1
	# shellcheck disable=SC2046
	track "$name" $(${name}_app_pids)
	load_mem=$(loadavg)
	local workers wpss=0 wrss=0 p pss rss per="" pre_line pre_pid="" pre_pss=0 pre_rss=0 processed
	workers=$(ferry_serving_pids "$name")
	[[ $(grep -c . <<<"$workers") == "$WORKERS" ]] || die "$m: expected $WORKERS serving processes, got: $workers"
	processed=$(ferry_pool "$name" | jq -r '[.apps[].processes[]? | "\(.pid):\(.processed)"] | join(" ")')
	for p in $workers; do
		pss=$(pss_kb "$p")
		rss=$(rss_kb "$p")
		wpss=$((wpss + pss))
		wrss=$((wrss + rss))
		per+="$p: PSS $(mib "$pss") RSS $(mib "$rss"); "
	done
	if [[ $m == smart ]]; then
		pre_line=$(grep 'msg="preloader ready"' "$logf" | tail -1 || true)
		pre_pid=$(logfield "$pre_line" pid)
		[[ -n $pre_pid ]] && kill -0 "$pre_pid" 2>/dev/null || die "smart: no live preloader (log line: $pre_line)"
		pre_pss=$(pss_kb "$pre_pid")
		pre_rss=$(rss_kb "$pre_pid")
	fi
	local warm_spawns
	warm_spawns=$(($(grep -c 'msg="process ready"' "$logf" || true) - WORKERS))
	if [[ $m == smart ]]; then
		printf '| smart | %s | %s MiB | %s MiB | %s MiB | %s MiB | %s MiB |\n' "$load_warm" "$(mib "$wpss")" \
			"$(mib "$pre_pss")" "$(mib $((wpss + pre_pss)))" "$(mib "$wrss")" "$(mib "$pre_rss")" >>"$MEM_TABLE"
	else
		printf '| direct | %s | %s MiB | — | %s MiB | %s MiB | — |\n' "$load_warm" "$(mib "$wpss")" \
			"$(mib "$wpss")" "$(mib "$wrss")" >>"$MEM_TABLE"
	fi
	log "$m: workers PSS $(mib "$wpss") MiB${pre_pid:+, preloader $pre_pid PSS $(mib "$pre_pss") MiB}"

	# ---- spawn time of a 5th process
	local r n0 i sl5 t5 b5 ready spid st load_r startups=() waits=() rows="" cpids=()
	for ((r = 1; r <= SPAWN_REPS; r++)); do
		ferry_wait_serving "$name" "$WORKERS" exact || die "$m: the pool did not shrink back to $WORKERS processes"
		sleep 0.5
		load_r=$(loadavg)
		n0=$(wc -l <"$logf")
		cpids=()
		for ((i = 1; i <= WORKERS; i++)); do
			curl -s --max-time $((SLEEP_S + 30)) -o "$tmp/$name.sleep$r.$i" -w '%{http_code} %{time_total}\n' \
				"http://127.0.0.1:$port/sleep?s=$SLEEP_S&n=$r.$i" >"$tmp/$name.sleep$r.$i.code" 2>&1 &
			cpids+=($!)
		done
		# until the 4 sleeps hold the 4 processes (bounded)
		for ((i = 0; i < 50; i++)); do
			(($(sessions_sum "$name") >= WORKERS)) && break
			sleep 0.05
		done
		sl5=$(sessions_sum "$name")
		((sl5 >= WORKERS)) || log "WARNING: $m rep $r: only $sl5 sessions open before the 5th request"
		# the 5th request queues; Ferry spawns a 5th process for it
		t5=$(curl -s --max-time $((SLEEP_S + 60)) -o "$tmp/$name.pid$r" -w '%{time_total}' \
			"http://127.0.0.1:$port/pid?n=$r" 2>/dev/null || true)
		b5=$(cat "$tmp/$name.pid$r" 2>/dev/null || true)
		for i in "${cpids[@]}"; do wait "$i" 2>/dev/null || true; done
		ready=$(tail -n +$((n0 + 1)) "$logf" | grep 'msg="process ready"' | tail -1 || true)
		[[ -n $ready ]] || die "$m rep $r: no 'process ready' line after the trigger; log tail: $(tail -n 5 "$logf")"
		spid=$(logfield "$ready" pid)
		st=$(logfield "$ready" startup)
		track "$name" "$spid"
		startups+=("$(to_ms "$st")")
		waits+=("$(awk -v t="${t5:-0}" 'BEGIN{printf "%.1f", t*1000}')")
		rows+="- rep $r: load average $load_r; sessions held by the sleeps when the 5th request was sent: $sl5; new process $spid, \`startup=$st\`; the queued request (GET /pid?n=$r) took ${waits[-1]} ms and was served by pid ${b5:-?}$( [[ ${b5:-} == "$spid" ]] && echo ' (the new process)' || echo ' (NOT the new process)'); the 4 sleeps: $(cat "$tmp/$name".sleep"$r".*.code | awk '{printf "%s %.2fs; ", $1, $2}')"$'\n'
		rows+="  \`$(cut -c1-200 <<<"$ready")\`"$'\n'
		log "$m rep $r: startup=$st (pid $spid), queued request ${waits[-1]} ms, served by ${b5:-?}"
	done
	local med_s med_w
	med_s=$(printf '%s\n' "${startups[@]}" | median)
	med_w=$(printf '%s\n' "${waits[@]}" | median)
	printf '| %s | %s | **%s** | %s | %s |\n' "$m" "$(printf '%s ms, ' "${startups[@]}" | sed 's/, $//')" "$med_s ms" \
		"$(printf '%s ms, ' "${waits[@]}" | sed 's/, $//')" "$med_w ms" >>"$SPAWN_TABLE"

	{
		echo "### --spawn-method $m"
		echo
		echo "- instance $inst; core pid ${SPID[$name]}"
		echo "- warm-up: $(wrk_total "$tmp/$name.warmup.txt") requests in $WARMUP ($(wrk_rps "$tmp/$name.warmup.txt") req/s, non-2xx $(wrk_non2xx "$tmp/$name.warmup.txt"), socket errors $(wrk_sockerr "$tmp/$name.warmup.txt")); before it: $load_warm; extra processes spawned during it (then idle-stopped): $warm_spawns"
		echo "- memory measured with load average $load_mem (the warm-up's own load included); requests processed per process (admin API): $processed"
		echo "- workers: $per"
		if [[ $m == smart ]]; then
			echo "- preloader: pid $pre_pid, PSS $(mib "$pre_pss") MiB, RSS $(mib "$pre_rss") MiB; \`$(cut -c1-160 <<<"$pre_line")\`"
		fi
		echo "- start-up lines at boot:"
		echo
		echo '```'
		grep -E 'msg="(preloader|process) ready"' "$logf" | head -n $((WORKERS + $([[ $m == smart ]] && echo 1 || echo 0))) | cut -c1-200
		echo '```'
		echo
		echo "- spawn of a 5th process:"
		printf '%s' "$rows"
		ferry_cache_line "$name"
	} >>"$DETAILS"

	"${name}_stop"
	log "$m: Ferry stopped"
	[[ -z $(alive_tracked "$name") ]] || die "$name processes still alive after stop: $(alive_tracked "$name" | tr '\n' ' ')"
	ferry_log_report "$name" "$tmp/$name.warmup.txt" >>"$DETAILS"
	echo >>"$DETAILS"
}

for m in $METHODS; do
	case $m in
	smart | direct) bench_method "$m" ;;
	*) die "unknown spawn method: $m" ;;
	esac
done

# ------------------------------------------------------------ report ----
mem_header='| spawn method | before the warm-up (2 s window) | PSS, 4 workers | PSS, preloader | PSS total | RSS, 4 workers | RSS, preloader |
| --- | --- | ---: | ---: | ---: | ---: | ---: |'
spawn_header="| spawn method | start-up of the 5th process (Ferry log), each | median | queued request's wait (client), each | median |
| --- | --- | ---: | --- | ---: |"
report=$tmp/report.md
{
	echo "## Run $started"
	echo
	echo "\`bench/smart-vs-direct.sh\`: testdata/wsgi/flask (Flask $("$PY" -c 'import importlib.metadata as m; print(m.version("flask"))'), /usr/bin/python3) under Ferry,"
	echo "\`ferry start APP --min-instances $WORKERS --max-pool-size $((WORKERS + 1)) -e production --python $PY --spawn-method METHOD --pool-idle-time 1\`, 127.0.0.1."
	echo
	echo "Memory after a warm-up (\`wrk -t2 -c8 -d$WARMUP\`) and once the pool is back to $WORKERS processes; Pss and VmRSS from /proc:"
	echo
	echo "$mem_header"
	cat "$MEM_TABLE"
	echo
	echo "Start-up of one more process: $WORKERS × \`GET /sleep?s=$SLEEP_S&n=REP.I\` hold the $WORKERS workers (distinct URLs, so that the turbocache does not coalesce them), then \`GET /pid?n=REP\` queues and Ferry spawns a 5th;"
	echo "start-up = \`startup=\` of its \`msg=\"process ready\"\` log line (smart: fork by the preloader until ready; direct: interpreter start, app import, until ready);"
	echo "the queued request's wait is its curl \`time_total\`. $SPAWN_REPS repetitions per method on one Ferry, the pool shrinking back to $WORKERS (\`--pool-idle-time 1\`) in between:"
	echo
	echo "$spawn_header"
	cat "$SPAWN_TABLE"
	echo
	machine_line
	echo "wrk, curl and Ferry share the same CPUs; other work on the machine may add noise (load averages above and below)."
	echo
	echo "Versions: $(ferry_build_line);"
	echo "$(go_version); Python $(py_version); Flask $("$PY" -c 'import importlib.metadata as m; print(m.version("flask"))'); Werkzeug $("$PY" -c 'import importlib.metadata as m; print(m.version("werkzeug"))'); $(wrk_version); $(curl --version | head -1 | awk '{print $1, $2}')."
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` (PORT=$PORT METHODS=\"$METHODS\" SPAWN_REPS=$SPAWN_REPS SLEEP_S=$SLEEP_S WARMUP=$WARMUP)"
	echo
	cat "$DETAILS"
} >"$report"

out=$(results_append smart-vs-direct "smart-vs-direct: Ferry's spawn methods on a Flask app" "$report")

echo
echo "$mem_header"
cat "$MEM_TABLE"
echo
echo "$spawn_header"
cat "$SPAWN_TABLE"
echo
log "details and versions appended to $out"
ok=1
