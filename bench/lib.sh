# shellcheck shell=bash
# bench/lib.sh: helpers shared by the bench/*.sh scripts.
#
# Source it from a script that runs with `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   need wrk have wrk; install_needed      # apt-get what is missing
#   bench_init                              # $tmp, EXIT trap that stops every tracked process
#   build_ferry                             # $tmp/ferry from this checkout
#
# Sourcing only defines functions and defaults; nothing runs until the script
# calls bench_init. Every process a script starts is recorded with `track NAME
# PID...` (pid + start time, so a reused pid is never signalled); stop_server
# stops one server (TERM, wait, KILL) and the EXIT trap stops whatever is left,
# even when the script fails or is interrupted.
#
# A "server" NAME, for start_sampler, wait_apps and bench_server, is a set of
# functions: NAME_start PORT (sets MAIN_PID and LOGF), NAME_server_pids,
# NAME_app_pids, NAME_stop; optional: NAME_app_count (app processes ready, when
# counting NAME_app_pids would be wrong), NAME_details (extra markdown lines),
# NAME_problems (markdown lines about the server's own log).
#
# Knobs read here: PY, KEEP_TMP, RESULTS_DIR, READY_TIMEOUT, STOP_TIMEOUT,
# SAMPLE_INTERVAL, THREADS, CONNECTIONS, WRK_PATH, SETTLE_MAX, SETTLE_BUSY,
# OTHERS_MAX, NOISY_RETRIES.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-/usr/bin/python3}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
READY_TIMEOUT=${READY_TIMEOUT:-60}   # seconds a server may take to answer 200
STOP_TIMEOUT=${STOP_TIMEOUT:-20}     # seconds between SIGTERM and SIGKILL
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-0.5}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
WRK_PATH=${WRK_PATH:-/}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------- tools ----
# need PKG CHECK...: the Debian package PKG is needed unless CHECK succeeds.
NEED_PKGS=()
have() { command -v "$1"; }
need() {
	local pkg=$1
	shift
	"$@" >/dev/null 2>&1 || NEED_PKGS+=("$pkg")
}
# install_needed: apt-get update (once) and install, only if something is missing.
install_needed() {
	((${#NEED_PKGS[@]})) || return 0
	log "installing missing packages: ${NEED_PKGS[*]}"
	[[ $(id -u) == 0 ]] || die "need root to apt-get install ${NEED_PKGS[*]}"
	timeout 600 apt-get update
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends "${NEED_PKGS[@]}"
	NEED_PKGS=()
}

# ------------------------------------------------------ temp + cleanup ----
tmp=
SAMPLER_PID=
ok=0
bench_init() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
	# Ferry run as root starts an app owned by root as --default-user
	# (nobody), which must be able to read the app copies made under $tmp.
	chmod 755 "$tmp"
	SAMPLER_PID=
	ok=0
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Tracked processes: one line "pid starttime" per process in $tmp/<server>.pids,
# so that a pid reused by an unrelated process is never signalled.
proc_start() { # pid -> start time in clock ticks (field 22 of stat), or nothing
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	# shellcheck disable=SC2086
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
	return 0
}
kill_tracked() { # server signal
	local p
	for p in $(alive_tracked "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}
# The sampler stops when $tmp/sampler.stop appears (checked every sample), or
# at SIGTERM (a subshell has the default action). No trap in the subshell:
# bash 5.2 can fail to parse a trap that fires while it runs a $(...) ("trap:
# unexpected EOF while looking for matching `)'"), and the sampler went on.
stop_sampler() {
	local i
	if [[ -n $SAMPLER_PID ]]; then
		touch "$tmp/sampler.stop"
		for ((i = 0; i < 20; i++)); do
			kill -0 "$SAMPLER_PID" 2>/dev/null || break
			sleep 0.25
		done
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
	local rc=$? f name i
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
http_code() { # port [path]
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1${2:-/}" 2>/dev/null || true
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# cpu_busy SECONDS: % of all CPUs busy (not idle/iowait) over the next SECONDS,
# from /proc/stat: what else is running right now, unlike the load average,
# which trails the last minutes (including the previous benchmark).
cpu_busy() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep "$1"
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a, x, " "); split(b, y, " "); t=y[1]-x[1]; i=y[2]-x[2]; printf "%.0f", (t > 0 ? 100*(t-i)/t : 0)}'
}
# settle: wait (at most SETTLE_MAX seconds) for a 2 s window with less than
# SETTLE_BUSY % CPU busy, so that a measurement does not start in the middle
# of someone else's burst; prints "busy N% (load a b c)" for the report.
SETTLE_MAX=${SETTLE_MAX:-30}
SETTLE_BUSY=${SETTLE_BUSY:-20}
# bench_server discards a run during which other processes used more than
# OTHERS_MAX % of the CPUs, and runs it again (at most NOISY_RETRIES times per run).
OTHERS_MAX=${OTHERS_MAX:-8}
NOISY_RETRIES=${NOISY_RETRIES:-4}
settle() {
	local deadline=$((SECONDS + SETTLE_MAX)) b
	while :; do
		b=$(cpu_busy 2)
		((b < SETTLE_BUSY || SECONDS >= deadline)) && break
	done
	((b < SETTLE_BUSY)) || log "CPU still ${b}% busy after waiting ${SETTLE_MAX}s; measuring anyway"
	echo "CPU ${b}% busy, load $(loadavg)"
}

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
# app_count server: NAME_app_count if defined, else the number of NAME_app_pids
app_count() {
	if declare -F "${1}_app_count" >/dev/null; then
		"${1}_app_count"
	else
		"${1}_app_pids" | grep -c . || true
	fi
}
# wait_apps server n: until the server has n app processes (bounded)
wait_apps() {
	local name=$1 n=$2 deadline=$((SECONDS + READY_TIMEOUT)) got=0
	while ((SECONDS < deadline)); do
		got=$(app_count "$name")
		((got >= n)) && return 0
		sleep 0.25
	done
	log "WARNING: $name has only $got of $n app processes after ${READY_TIMEOUT}s"
}

# ------------------------------------------------------------ sampler ----
# Every SAMPLE_INTERVAL: "server_rss_kb app_rss_kb" of the server NAME; also
# tracks every process seen so that cleanup can stop it. Bounded to 10 min.
start_sampler() { # server outfile
	local name=$1 out=$2
	rm -f "$tmp/sampler.stop"
	(
		set +e
		end=$((SECONDS + 600))
		while ((SECONDS < end)) && [[ ! -e $tmp/sampler.stop ]]; do
			s=$(${name}_server_pids)
			a=$(${name}_app_pids)
			# shellcheck disable=SC2086
			track "$name" $s $a
			# shellcheck disable=SC2086
			echo "$(sum_kb rss_kb $s) $(sum_kb rss_kb $a)" >>"$out"
			sleep "$SAMPLE_INTERVAL"
		done
	) &
	SAMPLER_PID=$!
}

# --------------------------------------------------------------- wrk ----
dur_s() { local d=$1; case $d in *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;; esac; }
# CPU accounting, to tell a slow run from a run that shared the CPUs with
# someone else: ticks the whole machine spent busy, minus those of the
# benchmarked processes and of wrk = what others used meanwhile.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() { # pid... -> utime+stime of those processes (all their threads)
	local s=0 p v
	for p in "$@"; do
		v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || v=0
		s=$((s + ${v:-0}))
	done
	echo "$s"
}
# machine_busy = user+nice+system+steal of /proc/stat: irq and softirq time
# (e.g. loopback networking) is charged to no process, so it is left out.
cpu_mark() { # pid... -> "machine_busy machine_total ours" in ticks
	echo "$(awk '/^cpu /{print $2+$3+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat) $(proc_ticks "$@")"
}
others_pct() { # mark_before mark_after wrk_cpu_seconds -> % of all CPUs used by others
	awk -v a="$1" -v b="$2" -v w="$3" -v hz="$CLK_TCK" 'BEGIN{split(a, x, " "); split(b, y, " ")
		busy = y[1]-x[1]; tot = y[2]-x[2]; o = busy - (y[3]-x[3]) - w*hz; if (o < 0) o = 0
		printf "%.0f", (tot > 0 ? 100*o/tot : 0)}'
}
# run_wrk port duration outfile [pid...]: wrk -t$THREADS -c$CONNECTIONS
# --latency on http://127.0.0.1:port$WRK_PATH, bounded by timeout; dies if
# wrk fails. With pids (the server's processes): outfile.cpu gets the % of
# all CPUs that other processes (not those, not wrk) used during the run.
run_wrk() {
	local port=$1 d=$2 out=$3 before after wcpu TIMEFORMAT='%3U %3S'
	shift 3
	before=$(cpu_mark "$@")
	{ time timeout $(($(dur_s "$d") + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" --latency \
		"http://127.0.0.1:$port$WRK_PATH" >"$out" 2>&1; } 2>"$out.time" || {
		log "wrk failed (rc=$?):"
		cat "$out" "$out.time" >&2
		die "wrk failed"
	}
	after=$(cpu_mark "$@")
	wcpu=$(awk '{print $1 + $2}' "$out.time")
	(($#)) && others_pct "$before" "$after" "$wcpu" >"$out.cpu"
	return 0
}
wrk_others() { cat "$1.cpu" 2>/dev/null || echo '?'; }
wrk_rps() { awk '/^Requests\/sec:/{print $2}' "$1"; }
wrk_total() { awk '/ requests in /{print $1}' "$1"; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/{print $NF; f=1} END{if(!f) print 0}' "$1"; }
wrk_sockerr() { # "connect a, read b, write c, timeout d" -> a+b+c+d
	awk '/Socket errors:/{gsub(/,/,""); print $4+$6+$8+$10; f=1} END{if(!f) print 0}' "$1"
}
wrk_sockerr_detail() { # -> "a/b/c/d" (connect/read/write/timeout)
	awk '/Socket errors:/{gsub(/,/,""); print $4"/"$6"/"$8"/"$10; f=1} END{if(!f) print "0/0/0/0"}' "$1"
}
wrk_lat() { awk '/^ +Latency /{print $2; exit}' "$1"; }
wrk_lat_max() { awk '/^ +Latency /{print $4; exit}' "$1"; }
wrk_p99() { awk '/^ +99% /{print $2; exit}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# -------------------------------------------------------------- Ferry ----
# build_ferry: $tmp/ferry from this checkout. Others edit the Go code while
# benchmarks run, so a failed build is retried a few times. Sets FERRY_REV,
# FERRY_DIRTY (count) and FERRY_DIRTY_PATHS as of the build.
build_ferry() {
	local i
	FERRY_REV=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
	for i in 1 2 3 4; do
		FERRY_DIRTY_PATHS=$(git -C "$repo" status --porcelain 2>/dev/null | awk '{print $2}' | paste -sd' ' || true)
		log "building Ferry from $repo (git $FERRY_REV, attempt $i)"
		if (cd "$repo" && timeout 600 go build -o "$tmp/ferry" ./cmd/ferry); then
			FERRY_DIRTY=$(wc -w <<<"$FERRY_DIRTY_PATHS")
			FERRY_VERSION=$("$tmp/ferry" version 2>/dev/null | head -1)
			return 0
		fi
		((i < 4)) && { log "build failed (the tree may be mid-edit); retrying in 15s"; sleep 15; }
	done
	die "go build ./cmd/ferry failed"
}
ferry_build_line() {
	echo "$FERRY_VERSION (git $FERRY_REV, $FERRY_DIRTY uncommitted paths in the working tree at build time${FERRY_DIRTY_PATHS:+: $FERRY_DIRTY_PATHS})"
}

# ferry_launch name port app_src ferry-args...: copy app_src to $tmp/app-NAME
# and start Ferry on it in the background, loopback only, logging to
# $tmp/NAME.log, its instance directory under $tmp/NAME-instances. Sets
# SPID[name], MAIN_PID, LOGF.
declare -gA SPID=()
ferry_launch() {
	local name=$1 port=$2 src=$3 app=$tmp/app-$1
	shift 3
	rm -rf "$app"
	cp -r "$src" "$app"
	mkdir -p "$tmp/$name-instances"
	"$tmp/ferry" start "$app" --port "$port" --address 127.0.0.1 \
		--log-file "$tmp/$name.log" --instance-registry-dir "$tmp/$name-instances" "$@" \
		</dev/null >"$tmp/$name.out" 2>&1 &
	SPID[$name]=$!
	track "$name" "$!"
	MAIN_PID=$!
	LOGF=$tmp/$name.log
}
# ferry_instance name: the instance directory, from the first log line that
# has instance=... (the "ferry started" line)
ferry_instance() {
	sed -n '/ instance=/{s/.* instance=\([^ ]*\).*/\1/p;q}' "$tmp/$1.log" 2>/dev/null || true
}
# ferry_pool name: the admin API's GET /pool (JSON), or nothing. Sends the
# instance's read-only token (INSTANCE/read.token, written by the Ferry this
# script started) when there is one, as `ferry` itself does.
ferry_pool() {
	local inst auth=()
	inst=$(ferry_instance "$1")
	[[ -n $inst && -S $inst/admin.sock ]] || return 0
	if [[ -r $inst/read.token ]]; then auth=(-H "Authorization: Bearer $(tr -d '[:space:]' <"$inst/read.token")"); fi
	curl -s --max-time 5 "${auth[@]}" --unix-socket "$inst/admin.sock" http://x/pool 2>/dev/null || true
}
# ferry_serving_pids name: pids of the app processes in state "serving"
ferry_serving_pids() {
	ferry_pool "$1" | jq -r '.apps[].processes[]? | select(.state == "serving") | .pid' 2>/dev/null || true
}
ferry_serving_count() { ferry_serving_pids "$1" | grep -c . || true; }
# ferry_wait_serving name n [exact]: until n processes serve (exactly n, and
# nothing spawning or retiring, with "exact"); bounded by READY_TIMEOUT
ferry_wait_serving() {
	local name=$1 n=$2 exact=${3:-} deadline=$((SECONDS + READY_TIMEOUT)) j got=0
	while ((SECONDS < deadline)); do
		j=$(ferry_pool "$name")
		got=$(jq '[.apps[].processes[]? | select(.state == "serving")] | length' <<<"$j" 2>/dev/null || echo 0)
		if [[ -z $exact ]]; then
			((got >= n)) && return 0
		else
			[[ $(jq '[.apps[].processes[]?] | length' <<<"$j" 2>/dev/null) == "$n" &&
				$(jq '[.apps[].spawning] | add' <<<"$j" 2>/dev/null) == 0 ]] && ((got == n)) && return 0
		fi
		sleep 0.2
	done
	log "WARNING: $name has $got serving processes, wanted ${exact:+exactly }$n, after ${READY_TIMEOUT}s"
	return 1
}
# ferry_log_report name [wrk outputs...]: markdown lines about $tmp/NAME.log
ferry_log_report() {
	local name=$1 f=$tmp/$1.log access s499 other total pat n
	shift
	(($#)) || set -- "$tmp/$name".warmup.txt "$tmp/$name".run*.txt
	access=$(grep -c 'log=access' "$f" || true)
	# 499 = the client closed the connection before the response: wrk
	# does that to the requests in flight when its -d time is up.
	s499=$(grep -c 'log=access.* status=499 ' "$f" || true)
	other=$(grep 'log=access' "$f" | grep -Evc ' status=(200|499) ' || true)
	total=$(cat "$@" 2>/dev/null | awk '/ requests in /{s+=$1} END{print s+0}' || true)
	echo "- $name.log: $(wc -l <"$f") lines, $access access lines (wrk reported $total completed requests, plus the readiness/check curls);" \
		"status 499 (client closed, i.e. wrk's in-flight requests at the end of each run): $s499; other non-200: $other"
	pat='level=(WARN|ERROR)'
	n=$(grep -Ec "$pat" "$f" || true)
	echo "- $name.log WARN/ERROR lines: $n"
	if ((n || other)); then
		echo
		echo '```'
		{ grep -E "$pat" "$f" || true; grep 'log=access' "$f" | grep -Ev ' status=(200|499) ' || true; } | head -n 20 | cut -c1-400
		echo '```'
	fi
}
# ferry_cache_line name: a markdown line with the turbocache counters of the
# running Ferry (a hit is a response that never reached the app)
ferry_cache_line() {
	local c
	c=$(ferry_pool "$1" | jq -r '[.apps[]? | .turbocache // empty | "hits \(.hits), misses \(.misses), stored \(.stores), coalesced \(.coalesced)"] | join("; ")' 2>/dev/null || true)
	echo "- turbocache (admin API, before stopping): ${c:-not reported}"
}
# define_ferry_server name: the server functions (see the top) for a Ferry
# started with ferry_launch NAME; its app processes are all of the core's
# descendants (workers, and with smart spawning the preloader); it counts as
# ready when the admin API shows the wanted number of serving processes.
define_ferry_server() {
	local n=$1
	eval "
${n}_server_pids() { echo \"\${SPID[$n]:-}\"; }
${n}_app_pids() { [[ -n \${SPID[$n]:-} ]] && descendants \"\${SPID[$n]}\"; return 0; }
${n}_app_count() { ferry_serving_count $n; }
${n}_stop() { stop_server $n \"\${SPID[$n]:-}\"; }
${n}_problems() { ferry_log_report $n; }
${n}_details() { ferry_cache_line $n; }
"
}

# ---------------------------------------------------------- benchmark ----
# bench_server name label port [app_processes=2]: start, warm up ($WARMUP),
# $RUNS × wrk ($DURATION), sample RSS, stop; appends a row to $TABLE:
# | label | req/s median | min–max | server RSS (peak) | app PSS (sum) | errors |
# and a section to $DETAILS.
TABLE=
DETAILS=
bench_tables_init() {
	TABLE=$tmp/table.md
	DETAILS=$tmp/details.md
	: >"$TABLE"
	: >"$DETAILS"
}
bench_server() {
	local name=$1 label=$2 port=$3 napps_want=${4:-2} i f rps=() errs=0 n2 se samples
	port_busy "$port" && die "port $port is already in use"
	log "== $label on 127.0.0.1:$port"
	local t0=$SECONDS
	"${name}_start" "$port"
	wait_ready "$name" "$port" "$MAIN_PID" "$LOGF"
	wait_apps "$name" "$napps_want"
	local startup=$((SECONDS - t0))
	# shellcheck disable=SC2046
	track "$name" $(${name}_server_pids) $(${name}_app_pids)
	log "$label answers 200 (${startup}s); server pids: $(${name}_server_pids | tr '\n' ' ')app pids: $(${name}_app_pids | tr '\n' ' ')"
	local load_before
	load_before=$(settle)

	samples=$tmp/$name.rss
	: >"$samples"
	start_sampler "$name" "$samples"

	log "$label: warm-up $WARMUP ($load_before)"
	run_wrk "$port" "$WARMUP" "$tmp/$name.warmup.txt"
	local attempt o noisy=()
	for ((i = 1; i <= RUNS; i++)); do
		f=$tmp/$name.run$i.txt
		attempt=0
		while :; do
			# shellcheck disable=SC2046
			run_wrk "$port" "$DURATION" "$f" $(${name}_server_pids) $(${name}_app_pids)
			o=$(wrk_others "$f")
			if [[ $o =~ ^[0-9]+$ ]] && ((o > OTHERS_MAX && attempt < NOISY_RETRIES)); then
				attempt=$((attempt + 1))
				mv "$f" "$tmp/$name.run$i.noisy$attempt.txt"
				mv "$f.cpu" "$tmp/$name.run$i.noisy$attempt.txt.cpu"
				noisy+=("run $i, attempt $attempt: $(wrk_rps "$tmp/$name.run$i.noisy$attempt.txt") req/s while other processes used $o% of the CPUs")
				log "$label run $i: others used $o% CPU (> $OTHERS_MAX%): run discarded, again after a quiet moment"
				settle >/dev/null
				continue
			fi
			break
		done
		rps+=("$(wrk_rps "$f")")
		n2=$(wrk_non2xx "$f")
		se=$(wrk_sockerr "$f")
		errs=$((errs + n2 + se))
		log "$label run $i: $(wrk_rps "$f") req/s, $(wrk_total "$f") requests, latency avg $(wrk_lat "$f") p99 $(wrk_p99 "$f"), non-2xx $n2, socket errors $se; others used $(wrk_others "$f")% CPU"
		if ((n2 + se)); then grep -E 'Socket errors|Non-2xx' "$f" >&2 || true; fi
	done
	stop_sampler

	# after the load: RSS of the server processes and PSS of the app processes
	local spids apids srss apss arss napps peak peak_app nsamp load_after
	load_after=$(loadavg)
	spids=$(${name}_server_pids)
	apids=$(${name}_app_pids)
	# shellcheck disable=SC2086
	srss=$(sum_kb rss_kb $spids)
	# shellcheck disable=SC2086
	apss=$(sum_kb pss_kb $apids)
	# shellcheck disable=SC2086
	arss=$(sum_kb rss_kb $apids)
	napps=$(echo "$apids" | grep -c . || true)
	peak=$(awk 'BEGIN{m=0} $1>m{m=$1} END{print m}' "$samples")
	peak_app=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$samples")
	nsamp=$(grep -c . "$samples" || true)

	local med mn mx speak
	med=$(printf '%s\n' "${rps[@]}" | median)
	mn=$(printf '%s\n' "${rps[@]}" | sort -g | head -1)
	mx=$(printf '%s\n' "${rps[@]}" | sort -g | tail -1)
	if [[ -n $spids ]]; then speak="$(mib "$peak") MiB"; else speak="—"; fi
	local others=""
	if [[ ${BENCH_OTHERS_COL:-0} == 1 ]]; then
		others=" $(for ((i = 1; i <= RUNS; i++)); do printf '%s%%, ' "$(wrk_others "$tmp/$name.run$i.txt")"; done | sed 's/, $//') |"
	fi
	printf '| %s | %.0f | %.0f–%.0f | %s | %s MiB | %s |%s\n' "$label" "$med" "$mn" "$mx" \
		"$speak" "$(mib "$apss")" "$errs" "$others" >>"$TABLE"

	{
		echo "### $label"
		echo
		echo "- port $port; ready (200 and $napps_want app processes) after ~${startup}s; before the warm-up (2 s window): $load_before; load average after the runs: $load_after"
		if [[ -n $spids ]]; then
			echo "- server processes (after load): $(for p in $spids; do printf '%s `%s` %s MiB; ' "$p" "$(cmdline "$p" | cut -c1-60 | sed 's/ *$//')" "$(mib "$(rss_kb "$p")")"; done)"
			echo "- server RSS: peak $(mib "$peak") MiB over $nsamp samples every ${SAMPLE_INTERVAL}s during warm-up + runs; $(mib "$srss") MiB after the load"
		else
			echo "- no server process apart from the app processes"
		fi
		echo "- app processes: $napps ($(for p in $apids; do printf '%s `%s`; ' "$p" "$(cmdline "$p" | cut -c1-50 | sed 's/ *$//')"; done)); PSS sum $(mib "$apss") MiB, RSS sum $(mib "$arss") MiB after the load (peak RSS sum during the runs $(mib "$peak_app") MiB)"
		for ((i = 1; i <= RUNS; i++)); do
			f=$tmp/$name.run$i.txt
			echo "- run $i: $(wrk_rps "$f") req/s, $(wrk_total "$f") requests, latency avg $(wrk_lat "$f"), p99 $(wrk_p99 "$f"), non-2xx $(wrk_non2xx "$f"), socket errors $(wrk_sockerr "$f")$(grep -o 'Socket errors:.*' "$f" | sed 's/^/ (/;s/$/)/' || true); CPU used by other processes meanwhile: $(wrk_others "$f")% of the machine"
		done
		if ((${#noisy[@]})); then
			echo "- discarded and run again (other processes used more than $OTHERS_MAX% of the CPUs): $(printf '%s; ' "${noisy[@]}" | sed 's/; $//')"
		fi
		if declare -F "${name}_details" >/dev/null; then "${name}_details"; fi
	} >>"$DETAILS"

	"${name}_stop"
	log "$label stopped"
	[[ -z $(alive_tracked "$name") ]] || die "$name processes still alive after stop: $(alive_tracked "$name" | tr '\n' ' ')"

	if declare -F "${name}_problems" >/dev/null; then "${name}_problems" >>"$DETAILS"; fi
	echo >>"$DETAILS"
}

# ------------------------------------------------------------ report ----
machine_line() {
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)."
}
wrk_version() { wrk -v 2>&1 | head -1 | awk '{print $1, $2}'; }
go_version() { go version | sed 's/^go version //'; }
py_version() { "$PY" -c 'import sys; print(sys.version.split()[0])'; }
# results_append name title reportfile: append to $RESULTS_DIR/NAME-YYYY-MM-DD.md
# (UTC date), creating it with a title when new; prints the path.
results_append() {
	local name=$1 title=$2 report=$3 out
	mkdir -p "$RESULTS_DIR"
	out=$RESULTS_DIR/$name-$(date -u +%F).md
	if [[ ! -s $out ]]; then
		printf '# %s\n\nGenerated by `bench/%s.sh`; one section per run.\n\n' "$title" "$name" >"$out"
	fi
	cat "$report" >>"$out"
	echo "$out"
}
