#!/usr/bin/env bash
# bench/hello-wsgi.sh: a side-by-side benchmark of examples/hello-wsgi served by
#   1. Ferry (built from this checkout),
#   2. gunicorn (Debian's, sync workers),
#   3. Passenger Standalone (Debian's, `--engine builtin`),
# each with 2 app processes on Debian's /usr/bin/python3, loopback only.
#
# Every server is started, measured and stopped before the next one starts;
# an EXIT trap stops whatever is still running (TERM, wait, KILL), even when
# the script fails or is interrupted.
#
# Usage: bench/hello-wsgi.sh            (from anywhere; needs root only for apt-get)
# Environment knobs (defaults in brackets):
#   BASE_PORT [18081]  ports BASE_PORT, +1, +2 for Ferry, gunicorn, Passenger
#   RUNS [3]  DURATION [10s]  THREADS [2]  CONNECTIONS [50]  WARMUP [2s]
#   SERVERS ["ferry gunicorn passenger"]  which servers, in that order
#   KEEP_TMP [0]  1 = keep the temp dir (logs) after a successful run
#   RESULTS_DIR [bench/results]
#
# Output: a markdown table on stdout, also appended (with machine info and
# tool versions) to $RESULTS_DIR/hello-wsgi-YYYY-MM-DD.md (UTC date).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
BASE_PORT=${BASE_PORT:-18081}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=${WARMUP:-2s}
SERVERS=${SERVERS:-"ferry gunicorn passenger"}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
APP_SRC=$repo/examples/hello-wsgi
READY_TIMEOUT=60   # seconds a server may take to answer 200
STOP_TIMEOUT=20    # seconds between SIGTERM and SIGKILL
SAMPLE_INTERVAL=0.5

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------- tools ----
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
"$PY" -c 'import gunicorn' >/dev/null 2>&1 || need+=(gunicorn)
command -v passenger >/dev/null 2>&1 || need+=(passenger)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
	log "installing missing packages: ${need[*]}"
	[[ $(id -u) == 0 ]] || die "need root to apt-get install ${need[*]}"
	timeout 600 apt-get update
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${need[@]}"
fi
command -v go >/dev/null 2>&1 || die "go is not installed"
[[ -x $PY ]] || die "$PY not found"
[[ -f $APP_SRC/passenger_wsgi.py ]] || die "$APP_SRC/passenger_wsgi.py not found"

# ------------------------------------------------------ temp + cleanup ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
SAMPLER_PID=
ok=0

# Tracked processes: one line "pid starttime" per process in $tmp/<server>.pids,
# so that a pid reused by an unrelated process is never signalled.
proc_start() { # pid -> start time in clock ticks (field 22 of stat), or nothing
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	set -- $s
	echo "${20}"
}
track() { # server pid...
	local f=$tmp/$1.pids p st
	shift
	for p in "$@"; do
		[[ -n $p ]] || continue
		st=$(proc_start "$p")
		[[ -n $st ]] || continue
		grep -qx "$p $st" "$f" 2>/dev/null || echo "$p $st" >>"$f"
	done
}
alive_tracked() { # server -> pids of tracked processes still alive (same identity)
	local f=$tmp/$1.pids p st
	[[ -f $f ]] || return 0
	while read -r p st; do
		[[ $(proc_start "$p") == "$st" ]] && echo "$p"
	done <"$f"
}
kill_tracked() { # server signal
	local p
	for p in $(alive_tracked "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}
stop_sampler() {
	if [[ -n $SAMPLER_PID ]]; then
		kill "$SAMPLER_PID" 2>/dev/null || true
		wait "$SAMPLER_PID" 2>/dev/null || true
		SAMPLER_PID=
	fi
}
# stop_server server main_pid...: SIGTERM to the main process(es), wait for
# every tracked process of the server to be gone, then SIGKILL the rest.
stop_server() {
	local name=$1 p i
	shift
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
		[[ -z $(alive_tracked "$name") ]] && break
		# the main pids may have been tracked late; make sure they got TERM
		sleep 0.25
	done
	if [[ -n $(alive_tracked "$name") ]]; then
		log "$name: still running after ${STOP_TIMEOUT}s: $(alive_tracked "$name" | tr '\n' ' ')-> SIGKILL"
		kill_tracked "$name" KILL
		sleep 0.5
	fi
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cleanup() {
	local rc=$? f name
	set +e
	trap - EXIT INT TERM
	stop_sampler
	for f in "$tmp"/*.pids; do
		[[ -f $f ]] || continue
		name=$(basename "$f" .pids)
		if [[ -n $(alive_tracked "$name") ]]; then
			log "cleanup: stopping leftover $name processes: $(alive_tracked "$name" | tr '\n' ' ')"
			kill_tracked "$name" TERM
			for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
				[[ -z $(alive_tracked "$name") ]] && break
				sleep 0.25
			done
			kill_tracked "$name" KILL
		fi
	done
	wait 2>/dev/null
	if ((ok)) && [[ $KEEP_TMP != 1 ]]; then
		rm -rf "$tmp"
	else
		log "temp dir kept: $tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ helpers ----
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true; }
descendants() {
	local c
	for c in $(children "$1"); do
		echo "$c"
		descendants "$c"
	done
}
cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }
rss_kb() { local v; v=$(awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null) || true; echo "${v:-0}"; }
pss_kb() { local v; v=$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null) || true; echo "${v:-0}"; }
sum_kb() { # fn pid... -> sum
	local fn=$1 s=0 p
	shift
	for p in "$@"; do s=$((s + $($fn "$p"))); done
	echo "$s"
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null || true; }

# wait_ready server port main_pid logfile
wait_ready() {
	local name=$1 port=$2 pid=$3 logf=$4 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name exited before answering; last lines of $logf:"
			tail -n 30 "$logf" >&2 || true
			die "$name did not start"
		fi
		[[ $(http_code "$port") == 200 ]] && return 0
		sleep 0.25
	done
	tail -n 30 "$logf" >&2 || true
	die "$name did not answer 200 on port $port within ${READY_TIMEOUT}s"
}
# wait_apps server n: until the server has n app processes (bounded)
wait_apps() {
	local name=$1 n=$2 deadline=$((SECONDS + READY_TIMEOUT)) got
	while ((SECONDS < deadline)); do
		got=$(${name}_app_pids | grep -c . || true)
		((got >= n)) && return 0
		sleep 0.25
	done
	log "WARNING: $name has only $got of $n app processes after ${READY_TIMEOUT}s"
}

# ----------------------------------------------------- server: Ferry ----
FERRY_PID=
ferry_start() {
	local port=$1 app=$tmp/app-ferry
	cp -r "$APP_SRC" "$app"
	mkdir -p "$tmp/ferry-instances"
	"$tmp/ferry" start "$app" --port "$port" --address 127.0.0.1 \
		--max-pool-size 2 --min-instances 2 -e production \
		--python "$PY" --log-file "$tmp/ferry.log" \
		--instance-registry-dir "$tmp/ferry-instances" \
		</dev/null >"$tmp/ferry.out" 2>&1 &
	FERRY_PID=$!
	track ferry "$FERRY_PID"
	MAIN_PID=$FERRY_PID
	LOGF=$tmp/ferry.log
}
ferry_server_pids() { echo "$FERRY_PID"; }
ferry_app_pids() { children "$FERRY_PID"; }
ferry_stop() { stop_server ferry "$FERRY_PID"; }

# -------------------------------------------------- server: gunicorn ----
GUNICORN_PID=
gunicorn_start() {
	local port=$1 app=$tmp/app-gunicorn
	cp -r "$APP_SRC" "$app"
	# Debian's Python 3 and Debian's gunicorn module; sync workers; the
	# access log is off unless --access-logfile is given.
	(cd "$app" && exec "$PY" -m gunicorn -w 2 -b "127.0.0.1:$port" \
		--error-logfile "$tmp/gunicorn.log" passenger_wsgi:application \
		</dev/null >"$tmp/gunicorn.out" 2>&1) &
	GUNICORN_PID=$!
	track gunicorn "$GUNICORN_PID"
	MAIN_PID=$GUNICORN_PID
	LOGF=$tmp/gunicorn.log
}
gunicorn_server_pids() { echo "$GUNICORN_PID"; }
gunicorn_app_pids() { children "$GUNICORN_PID"; }
gunicorn_stop() { stop_server gunicorn "$GUNICORN_PID"; }

# ------------------------------------------------- server: Passenger ----
# `passenger start` (ruby) stays in the foreground tailing the log; the
# PassengerAgent watchdog daemonises (ppid 1) and writes --pid-file; the core
# is its child and the app processes (wsgi-loader.py) are the core's children;
# a PassengerAgent temp-dir-toucher daemonises too.
PASSENGER_PID=
passenger_start() {
	local port=$1 app=$tmp/app-passenger
	cp -r "$APP_SRC" "$app"
	mkdir -p "$tmp/passenger-instances" "$tmp/passenger-tmp"
	(cd "$app" && TMPDIR=$tmp/passenger-tmp exec passenger start \
		--engine builtin --max-pool-size 2 --min-instances 2 \
		--port "$port" --address 127.0.0.1 -e production --python "$PY" \
		--disable-security-update-check --disable-anonymous-telemetry \
		--log-file "$tmp/passenger.log" --pid-file "$tmp/passenger.pid" \
		--instance-registry-dir "$tmp/passenger-instances" \
		</dev/null >"$tmp/passenger.out" 2>&1) &
	PASSENGER_PID=$!
	track passenger "$PASSENGER_PID"
	MAIN_PID=$PASSENGER_PID
	LOGF=$tmp/passenger.log
}
passenger_watchdog() { cat "$tmp/passenger.pid" 2>/dev/null || true; }
passenger_toucher() { # pid file in TMPDIR=$tmp/passenger-tmp
	local f
	for f in "$tmp"/passenger-tmp/passenger-standalone.*/temp_dir_toucher.pid; do
		[[ -f $f ]] && cat "$f" 2>/dev/null
	done
	return 0
}
passenger_server_pids() { # PassengerAgent processes: watchdog, core, temp-dir-toucher
	# (not the short-lived helpers the core forks now and then)
	local wd p
	wd=$(passenger_watchdog)
	[[ -n $wd ]] || return 0
	echo "$wd"
	for p in $(children "$wd"); do
		[[ $(cmdline "$p") == "Passenger core"* ]] && echo "$p"
	done
	passenger_toucher
}
passenger_app_pids() {
	local wd p
	wd=$(passenger_watchdog)
	[[ -n $wd ]] || return 0
	for p in $(descendants "$wd"); do
		[[ $(cmdline "$p") == *wsgi-loader.py* ]] && echo "$p"
	done
	return 0
}
passenger_stop() { stop_server passenger "$PASSENGER_PID"; }

# ------------------------------------------------------------ sampler ----
# Every SAMPLE_INTERVAL: "server_rss_kb app_rss_kb" of the current server;
# also tracks every process seen so that cleanup can stop it.
start_sampler() { # server outfile
	local name=$1 out=$2
	(
		set +e
		trap 'exit 0' TERM
		end=$((SECONDS + 600))
		while ((SECONDS < end)); do
			s=$(${name}_server_pids)
			a=$(${name}_app_pids)
			track "$name" $s $a
			echo "$(sum_kb rss_kb $s) $(sum_kb rss_kb $a)" >>"$out"
			sleep "$SAMPLE_INTERVAL"
		done
	) &
	SAMPLER_PID=$!
}

# --------------------------------------------------------------- wrk ----
dur_s() { local d=$1; case $d in *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;; esac; }
run_wrk() { # port duration outfile
	timeout $(($(dur_s "$2") + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency \
		"http://127.0.0.1:$1/" >"$3" 2>&1 || {
		log "wrk failed (rc=$?):"
		cat "$3" >&2
		die "wrk failed"
	}
}
wrk_rps() { awk '/^Requests\/sec:/{print $2}' "$1"; }
wrk_total() { awk '/ requests in /{print $1}' "$1"; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/{print $NF; f=1} END{if(!f) print 0}' "$1"; }
wrk_sockerr() { # "connect a, read b, write c, timeout d" -> a+b+c+d
	awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10; f=1} END{if(!f) print 0}' "$1"
}
wrk_lat() { awk '/^ +Latency /{print $2; exit}' "$1"; }
wrk_p99() { awk '/^ +99% /{print $2; exit}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# ---------------------------------------------------------- benchmark ----
TABLE=$tmp/table.md
DETAILS=$tmp/details.md
: >"$TABLE"
: >"$DETAILS"

bench_server() { # name label port
	local name=$1 label=$2 port=$3 i f rps=() errs=0 n2 se samples
	port_busy "$port" && die "port $port is already in use"
	log "== $label on 127.0.0.1:$port"
	local t0=$SECONDS
	"${name}_start" "$port"
	wait_ready "$name" "$port" "$MAIN_PID" "$LOGF"
	wait_apps "$name" 2
	local startup=$((SECONDS - t0))
	track "$name" $(${name}_server_pids) $(${name}_app_pids)
	log "$label answers 200 (${startup}s); server pids: $(${name}_server_pids | tr '\n' ' ')app pids: $(${name}_app_pids | tr '\n' ' ')"
	local load_before
	load_before=$(cut -d' ' -f1-3 /proc/loadavg)

	samples=$tmp/$name.rss
	: >"$samples"
	start_sampler "$name" "$samples"

	log "$label: warm-up $WARMUP"
	run_wrk "$port" "$WARMUP" "$tmp/$name.warmup.txt"
	for ((i = 1; i <= RUNS; i++)); do
		f=$tmp/$name.run$i.txt
		run_wrk "$port" "$DURATION" "$f"
		rps+=("$(wrk_rps "$f")")
		n2=$(wrk_non2xx "$f")
		se=$(wrk_sockerr "$f")
		errs=$((errs + n2 + se))
		log "$label run $i: $(wrk_rps "$f") req/s, $(wrk_total "$f") requests, latency avg $(wrk_lat "$f") p99 $(wrk_p99 "$f"), non-2xx $n2, socket errors $se"
		if ((n2 + se)); then grep -E 'Socket errors|Non-2xx' "$f" >&2 || true; fi
	done
	stop_sampler

	# after the load: RSS of the server processes and PSS of the app processes
	local spids apids srss apss arss
	spids=$(${name}_server_pids)
	apids=$(${name}_app_pids)
	srss=$(sum_kb rss_kb $spids)
	apss=$(sum_kb pss_kb $apids)
	arss=$(sum_kb rss_kb $apids)
	local napps
	napps=$(echo "$apids" | grep -c . || true)
	local peak
	peak=$(awk 'BEGIN{m=0} $1>m{m=$1} END{print m}' "$samples")
	local peak_app
	peak_app=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$samples")
	local nsamp
	nsamp=$(grep -c . "$samples" || true)

	local med mn mx
	med=$(printf '%s\n' "${rps[@]}" | median)
	mn=$(printf '%s\n' "${rps[@]}" | sort -g | head -1)
	mx=$(printf '%s\n' "${rps[@]}" | sort -g | tail -1)
	printf '| %s | %.0f | %.0f–%.0f | %s MiB | %s MiB | %s |\n' "$label" "$med" "$mn" "$mx" \
		"$(mib "$peak")" "$(mib "$apss")" "$errs" >>"$TABLE"

	{
		echo "### $label"
		echo
		echo "- port $port; ready (200 and 2 app processes) after ~${startup}s; load average before the runs: $load_before (includes the previous server's benchmark)"
		echo "- server processes (after load): $(for p in $spids; do printf '%s `%s` %s MiB; ' "$p" "$(cmdline "$p" | cut -c1-60 | sed 's/ *$//')" "$(mib "$(rss_kb "$p")")"; done)"
		echo "- server RSS: peak $(mib "$peak") MiB over $nsamp samples every ${SAMPLE_INTERVAL}s during warm-up + runs; $(mib "$srss") MiB after the load"
		echo "- app processes: $napps; PSS sum $(mib "$apss") MiB, RSS sum $(mib "$arss") MiB after the load (peak RSS sum during the runs $(mib "$peak_app") MiB)"
		for ((i = 1; i <= RUNS; i++)); do
			f=$tmp/$name.run$i.txt
			echo "- run $i: $(wrk_rps "$f") req/s, $(wrk_total "$f") requests, latency avg $(wrk_lat "$f"), p99 $(wrk_p99 "$f"), non-2xx $(wrk_non2xx "$f"), socket errors $(wrk_sockerr "$f")$(grep -o 'Socket errors:.*' "$f" | sed 's/^/ (/;s/$/)/' || true)"
		done
	} >>"$DETAILS"
	if [[ $name == passenger ]]; then
		local front_rss
		front_rss=$(rss_kb "$PASSENGER_PID")
		echo "- not counted above: the \`passenger start\` front-end (ruby, pid $PASSENGER_PID, tails the log) $(mib "$front_rss") MiB RSS" >>"$DETAILS"
		local st
		st=$(PASSENGER_INSTANCE_REGISTRY_DIR=$tmp/passenger-instances timeout 15 passenger-status --show=pool 2>/dev/null |
			awk '/Processed:/{for(i=1;i<=NF;i++) if($i=="Processed:") s+=$(i+1)} END{print s+0}' || true)
		echo "- passenger-status: requests processed by the app processes: ${st:-?} (wrk total incl. warm-up: $(cat "$tmp"/passenger.{warmup,run*}.txt | awk '/ requests in /{s+=$1} END{print s}'))" >>"$DETAILS"
	fi

	"${name}_stop"
	log "$label stopped"
	[[ -z $(alive_tracked "$name") ]] || die "$name processes still alive after stop: $(alive_tracked "$name" | tr '\n' ' ')"

	log_problems "$name" "$label" >>"$DETAILS"
	echo >>"$DETAILS"
}

# log_problems: warnings/errors in the server's own log, with excerpts
log_problems() {
	local name=$1 label=$2 f pat n
	case $name in
	ferry)
		f=$tmp/ferry.log
		local access s499 other total
		access=$(grep -c 'log=access' "$f" || true)
		# 499 = the client closed the connection before the response: wrk
		# does that to the requests in flight when its -d time is up.
		s499=$(grep -c 'log=access.* status=499 ' "$f" || true)
		other=$(grep 'log=access' "$f" | grep -Evc ' status=(200|499) ' || true)
		total=$(cat "$tmp"/ferry.{warmup,run*}.txt | awk '/ requests in /{s+=$1} END{print s}')
		echo "- ferry.log: $(wc -l <"$f") lines, $access access lines (wrk reported $total completed requests incl. warm-up, plus the readiness curls);" \
			"status 499 (client closed, i.e. wrk's in-flight requests at the end of each run): $s499; other non-200: $other"
		pat='level=(WARN|ERROR)'
		n=$(grep -Ec "$pat" "$f" || true)
		echo "- ferry.log WARN/ERROR lines: $n"
		if ((n || other)); then
			echo
			echo '```'
			{ grep -E "$pat" "$f" || true; grep 'log=access' "$f" | grep -Ev ' status=(200|499) ' || true; } | head -n 20
			echo '```'
		fi
		;;
	gunicorn)
		f=$tmp/gunicorn.log
		pat='\[(WARNING|ERROR|CRITICAL)\]'
		n=$(grep -Ec "$pat" "$f" || true)
		echo "- gunicorn.log WARNING/ERROR/CRITICAL lines: $n"
		if ((n)); then
			echo
			echo '```'
			{ grep -E "$pat" "$f" || true; } | head -n 20
			echo '```'
		fi
		;;
	passenger)
		f=$tmp/passenger.log
		pat='^\[ (W|E|C) '
		n=$(grep -Ec "$pat" "$f" || true)
		echo "- passenger.log warning/error lines: $n"
		if ((n)); then
			echo
			echo '```'
			{ grep -E "$pat" "$f" || true; } | head -n 20
			echo '```'
		fi
		;;
	esac
}

# -------------------------------------------------------------- build ----
log "building Ferry from $repo"
(cd "$repo" && go build -o "$tmp/ferry" ./cmd/ferry)

ports=()
i=0
for s in $SERVERS; do
	ports+=($((BASE_PORT + i)))
	i=$((i + 1))
done
for p in "${ports[@]}"; do port_busy "$p" && die "port $p is already in use"; done

started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
i=0
for s in $SERVERS; do
	case $s in
	ferry) bench_server ferry Ferry "${ports[$i]}" ;;
	gunicorn) bench_server gunicorn gunicorn "${ports[$i]}" ;;
	passenger) bench_server passenger "Passenger (builtin)" "${ports[$i]}" ;;
	*) die "unknown server: $s" ;;
	esac
	i=$((i + 1))
done

# ------------------------------------------------------------ report ----
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=$(git -C "$repo" status --porcelain 2>/dev/null | grep -c . || true)
header='| server | req/s median | min–max | server RSS (peak) | app PSS (sum) | errors |
| --- | ---: | ---: | ---: | ---: | ---: |'
report=$tmp/report.md
{
	echo "## Run $started"
	echo
	echo "\`bench/hello-wsgi.sh\`: examples/hello-wsgi, 2 app processes per server, /usr/bin/python3, 127.0.0.1;"
	echo "each server: warm-up $WARMUP, then $RUNS × \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\`."
	echo
	echo "$header"
	cat "$TABLE"
	echo
	echo "server RSS: peak of the server's own processes sampled every ${SAMPLE_INTERVAL}s during warm-up and runs"
	echo "(Ferry: the core; gunicorn: the master; Passenger: PassengerAgent watchdog + core + temp-dir-toucher)."
	echo "app PSS: sum of Pss from /proc/PID/smaps_rollup of the app processes after the load."
	echo "errors: wrk non-2xx responses + socket errors over all runs."
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)."
	echo "wrk and the servers share the same CPUs; other work on the machine may add noise."
	echo
	echo "Versions: $("$tmp/ferry" version 2>/dev/null | head -1) (git $rev, $dirty uncommitted paths in the working tree at build time);"
	echo "$(go version | sed 's/^go version //'); Python $("$PY" -c 'import sys; print(sys.version.split()[0])');"
	echo "gunicorn $("$PY" -m gunicorn --version 2>&1 | awk '{print $NF}' | tr -d '()');"
	echo "$(passenger --version 2>/dev/null | head -1);"
	echo "$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')."
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` (SERVERS=\"$SERVERS\" RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP BASE_PORT=$BASE_PORT)"
	echo
	cat "$DETAILS"
} >"$report"

mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/hello-wsgi-$(date -u +%F).md
if [[ ! -s $out ]]; then
	printf '# hello-wsgi: Ferry vs gunicorn vs Passenger Standalone\n\nGenerated by `bench/hello-wsgi.sh`; one section per run.\n\n' >"$out"
fi
cat "$report" >>"$out"

echo
echo "$header"
cat "$TABLE"
echo
log "details and versions appended to $out"
ok=1
