#!/usr/bin/env bash
# bench/hello-wsgi.sh: a side-by-side benchmark of examples/hello-wsgi served by
#   1. Ferry (built from this checkout; smart spawning, its default for WSGI),
#   2. gunicorn (Debian's, sync workers),
#   3. Passenger Standalone (Debian's, `--engine builtin`),
# each with 2 app processes on Debian's /usr/bin/python3, loopback only.
#
# Every server is started, measured and stopped before the next one starts;
# an EXIT trap stops whatever is still running (TERM, wait, KILL), even when
# the script fails or is interrupted. Shared helpers: bench/lib.sh.
#
# Usage: bench/hello-wsgi.sh            (from anywhere; needs root only for apt-get)
# Environment knobs (defaults in brackets):
#   BASE_PORT [18081]  ports BASE_PORT, +1, +2 for Ferry, gunicorn, Passenger
#   RUNS [3]  DURATION [10s]  THREADS [2]  CONNECTIONS [50]  WARMUP [2s]
#   SERVERS ["ferry gunicorn passenger"]  which servers, in that order
#   SETTLE_MAX [30]  SETTLE_BUSY [20]  before each server's warm-up, wait up to SETTLE_MAX s
#     for a 2 s window with under SETTLE_BUSY % CPU busy (others may be running tests)
#   OTHERS_MAX [8]  NOISY_RETRIES [4]  a run during which other processes used more
#     than OTHERS_MAX % of the CPUs is discarded and run again (at most NOISY_RETRIES times)
#   KEEP_TMP [0]  1 = keep the temp dir (logs) after a successful run
#   RESULTS_DIR [bench/results]
#
# Output: a markdown table on stdout, also appended (with machine info and
# tool versions) to $RESULTS_DIR/hello-wsgi-YYYY-MM-DD.md (UTC date).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BASE_PORT=${BASE_PORT:-18081}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SERVERS=${SERVERS:-"ferry gunicorn passenger"}
APP_SRC=$repo/examples/hello-wsgi

# ---------------------------------------------------------------- tools ----
need wrk have wrk
need curl have curl
need jq have jq
if [[ " $SERVERS " == *" gunicorn "* ]]; then need gunicorn "$PY" -c 'import gunicorn'; fi
if [[ " $SERVERS " == *" passenger "* ]]; then need passenger have passenger; fi
install_needed
have go >/dev/null || die "go is not installed"
[[ -x $PY ]] || die "$PY not found"
[[ -f $APP_SRC/passenger_wsgi.py ]] || die "$APP_SRC/passenger_wsgi.py not found"

bench_init

# ----------------------------------------------------- server: Ferry ----
# Its app processes are the core's descendants: the 2 workers and, with smart
# spawning, the preloader they are forked from (counted in app PSS: it holds
# the loaded app, like gunicorn's workers each do).
ferry_start() {
	ferry_launch ferry "$1" "$APP_SRC" --max-pool-size 2 --min-instances 2 -e production --python "$PY"
}
define_ferry_server ferry

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

gunicorn_problems() {
	local f=$tmp/gunicorn.log pat='\[(WARNING|ERROR|CRITICAL)\]' n
	n=$(grep -Ec "$pat" "$f" || true)
	echo "- gunicorn.log WARNING/ERROR/CRITICAL lines: $n"
	if ((n)); then
		echo
		echo '```'
		{ grep -E "$pat" "$f" || true; } | head -n 20
		echo '```'
	fi
}

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

# extra lines for the details
passenger_details() {
	local front_rss st
	front_rss=$(rss_kb "$PASSENGER_PID")
	echo "- not counted above: the \`passenger start\` front-end (ruby, pid $PASSENGER_PID, tails the log) $(mib "$front_rss") MiB RSS"
	st=$(PASSENGER_INSTANCE_REGISTRY_DIR=$tmp/passenger-instances timeout 15 passenger-status --show=pool 2>/dev/null |
		awk '/Processed:/{for(i=1;i<=NF;i++) if($i=="Processed:") s+=$(i+1)} END{print s+0}' || true)
	echo "- passenger-status: requests processed by the app processes: ${st:-?} (wrk total incl. warm-up: $(cat "$tmp"/passenger.{warmup,run*}.txt | awk '/ requests in /{s+=$1} END{print s}'))"
}
passenger_problems() {
	local f=$tmp/passenger.log pat='^\[ (W|E|C) ' n
	n=$(grep -Ec "$pat" "$f" || true)
	echo "- passenger.log warning/error lines: $n"
	if ((n)); then
		echo
		echo '```'
		{ grep -E "$pat" "$f" || true; } | head -n 20
		echo '```'
	fi
}

# -------------------------------------------------------------- build ----
build_ferry
bench_tables_init

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
	echo "app PSS: sum of Pss from /proc/PID/smaps_rollup of the app processes after the load"
	echo "(Ferry: the 2 workers and the preloader they were forked from; gunicorn: the 2 workers; Passenger: the 2 wsgi-loader.py processes)."
	echo "errors: wrk non-2xx responses + socket errors over all runs."
	echo "A run during which other processes used more than $OTHERS_MAX% of the CPUs was discarded and run again, at most $NOISY_RETRIES times (see the details)."
	echo
	machine_line
	echo "wrk and the servers share the same CPUs; other work on the machine may add noise."
	echo
	echo "Versions: $(ferry_build_line);"
	echo "$(go_version); Python $(py_version);"
	if [[ " $SERVERS " == *" gunicorn "* ]]; then echo "gunicorn $("$PY" -m gunicorn --version 2>&1 | awk '{print $NF}' | tr -d '()');"; fi
	if [[ " $SERVERS " == *" passenger "* ]]; then echo "$(passenger --version 2>/dev/null | head -1);"; fi
	echo "$(wrk_version)."
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` (SERVERS=\"$SERVERS\" RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP BASE_PORT=$BASE_PORT OTHERS_MAX=$OTHERS_MAX NOISY_RETRIES=$NOISY_RETRIES)"
	echo
	cat "$DETAILS"
} >"$report"

out=$(results_append hello-wsgi "hello-wsgi: Ferry vs gunicorn vs Passenger Standalone" "$report")

echo
echo "$header"
cat "$TABLE"
echo
log "details and versions appended to $out"
ok=1
