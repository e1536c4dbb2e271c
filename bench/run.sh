#!/usr/bin/env bash
# bench/run.sh: Ferry side by side with the servers users would pick instead,
# in one run on one machine (issue 10). Every server gets the same app and 2
# app processes, listens on 127.0.0.1 only, and is started, measured and
# stopped before the next one starts. Scenarios (SCENARIOS):
#
#   hello       hello world: WSGI (Ferry, Passenger, gunicorn, uwsgi), Rack
#               (Ferry, Passenger, puma, unicorn), Node (Ferry, Passenger,
#               node alone, a 2-worker cluster); also gives "memory"
#   cache       a cacheable endpoint: Ferry's turbocache, Passenger's
#               turbocache, Varnish in front of gunicorn, nginx `return 200`
#               and bench/constserver (bare Go net/http, and -loop epoll:
#               an epoll loop per CPU, no netpoller) as ceilings; then
#               Ferry with 90% of the requests uncacheable (hit rate)
#   static      a 4 KiB and a 1 MiB file: Ferry, nginx, Passenger
#   queue       a 50 ms endpoint at 50 connections: Ferry, Passenger, gunicorn
#   coldstart   launch to first 200 for each hello server, COLD_REPS times
#   slowclients 200 slow clients (bench/slowclients) beside the load:
#               Ferry, Passenger, gunicorn
#
# Loads are wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, after a
# $WARMUP warm-up, $RUNS times per server; tables give the median and the
# min–max. Before each server's measurement the script waits (at most
# SETTLE_MAX s) for a quiet 2 s window and records the CPU use and load
# average; a run during which other processes used more than OTHERS_MAX % of
# the CPUs is run again, at most NOISY_RETRIES times. An EXIT trap stops
# every process the script started (tracked by pid and start time), even on
# failure or Ctrl-C. A server that fails to start or to answer is reported as
# such and the run goes on.
#
# Usage: bench/run.sh                 (as root: it apt-gets what is missing)
# Knobs (defaults in brackets):
#   RUNS [3]  DURATION [10s]  WARMUP [2s]  THREADS [2]  CONNECTIONS [50]
#   SCENARIOS ["hello cache static queue coldstart slowclients"]
#   ONLY [""]  a regex: only servers whose id matches (e.g. 'ferry|gunicorn')
#   COLD_REPS [5]  SLOW_CLIENTS [200]  BASE_PORT [18400]
#   SETTLE_MAX [10]  SETTLE_BUSY [25]  OTHERS_MAX [25]  NOISY_RETRIES [1]
#   KEEP_TMP [0] (1: keep logs)  RESULTS_DIR [bench/results]
#
# Output: one markdown table per scenario on stdout; everything (tables,
# machine, versions, per-run details) appended to
# $RESULTS_DIR/run-YYYY-MM-DD.md (UTC date). bench/README.md explains them.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
SCENARIOS=${SCENARIOS:-"hello cache static queue coldstart slowclients"}
ONLY=${ONLY:-}
COLD_REPS=${COLD_REPS:-5}
SLOW_CLIENTS=${SLOW_CLIENTS:-200}
BASE_PORT=${BASE_PORT:-18400}
SETTLE_MAX=${SETTLE_MAX:-10}
SETTLE_BUSY=${SETTLE_BUSY:-25}
OTHERS_MAX=${OTHERS_MAX:-25}
NOISY_RETRIES=${NOISY_RETRIES:-1}
KEEP_TMP=${KEEP_TMP:-0}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}
READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
SAMPLE_INTERVAL=${SAMPLE_INTERVAL:-1}
# Debian's interpreters, whatever PATH says (pyenv, rbenv, nvm...): the peers
# come from Debian and load their apps with these.
PY=/usr/bin/python3
RUBY=/usr/bin/ruby
NODE=/usr/bin/node

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "FATAL: $*"
	exit 1
}
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }
selected() { [[ -z $ONLY ]] || [[ $1 =~ $ONLY ]]; }

# ------------------------------------------------------------ install ----
# need PKG CHECK...: Debian package PKG is needed unless CHECK succeeds.
NEED_PKGS=()
need() {
	local pkg=$1
	shift
	"$@" >/dev/null 2>&1 || NEED_PKGS+=("$pkg")
}
have() { command -v "$1"; }
need wrk have wrk
need curl have curl
need jq have jq
need iproute2 have ss
need golang-go have go
need python3 test -x $PY
need ruby test -x $RUBY
need nodejs test -x $NODE
need ruby-rack $RUBY -e 'require "rack"'
need passenger have passenger
need gunicorn $PY -c 'import gunicorn'
need uwsgi have uwsgi
need uwsgi-plugin-python3 test -e /usr/lib/uwsgi/plugins/python3_plugin.so
need puma have puma
need unicorn have unicorn
need nginx have nginx
need varnish have varnishd
need nghttp2-client have h2load
if ((${#NEED_PKGS[@]})); then
	[[ $(id -u) == 0 ]] || die "missing ${NEED_PKGS[*]}; run as root to apt-get them"
	log "installing ${NEED_PKGS[*]} (apt-get update once, then install)"
	timeout 600 apt-get update -qq
	# policy-rc.d or not, the packages' services must not start on their ports
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${NEED_PKGS[@]}" >/dev/null
fi
have go >/dev/null || die "go not found"

# ---------------------------------------------------- temp dir, cleanup ----
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-run.XXXXXX")
# app copies are read by app users (nobody) under it
chmod 755 "$tmp"
mkdir -p "$tmp/bin" "$tmp/pids" "$tmp/res" "$tmp/srv" "$tmp/apps" "$tmp/out"
ok=0

# Tracked processes: "pid starttime" lines in $tmp/pids/NAME, so that a pid
# reused by an unrelated process is never signalled.
proc_start() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	echo "${20}"
}
track() { # name pid...
	local f=$tmp/pids/$1 p st
	shift
	for p in "$@"; do
		[[ $p =~ ^[0-9]+$ ]] || continue
		st=$(proc_start "$p")
		[[ -n $st ]] || continue
		grep -qx "$p $st" "$f" 2>/dev/null || echo "$p $st" >>"$f"
	done
	return 0
}
alive_tracked() { # name -> live tracked pids
	local f=$tmp/pids/$1 p st
	[[ -f $f ]] || return 0
	while read -r p st; do
		[[ $(proc_start "$p") == "$st" ]] && echo "$p"
	done <"$f"
	return 0
}
kill_tracked() { # name signal
	local p
	for p in $(alive_tracked "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}
# wait_gone name seconds: until no tracked process of name lives
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[[ -z $(alive_tracked "$1") ]] && return 0
		sleep 0.1
	done
	return 1
}
cleanup() {
	local rc=$? f name
	set +e
	trap - EXIT INT TERM
	for f in "$tmp"/pids/*; do
		[[ -f $f ]] || continue
		name=$(basename "$f")
		if [[ -n $(alive_tracked "$name") ]]; then
			log "cleanup: stopping $name: $(alive_tracked "$name" | tr '\n' ' ')"
			kill_tracked "$name" TERM
		fi
	done
	for f in "$tmp"/pids/*; do
		[[ -f $f ]] || continue
		name=$(basename "$f")
		wait_gone "$name" "$STOP_TIMEOUT" || kill_tracked "$name" KILL
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
rss_kb() {
	local v
	v=$(awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null) || true
	echo "${v:-0}"
}
pss_kb() {
	local v
	v=$(awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null) || true
	echo "${v:-0}"
}
sum_kb() { # fn pid...
	local fn=$1 s=0 p
	shift
	for p in "$@"; do s=$((s + $($fn "$p"))); done
	echo "$s"
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
port_busy() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
NEXT_PORT=$BASE_PORT
# alloc_port: the next free TCP port from BASE_PORT on (checked with ss)
alloc_port() {
	local tries=0
	while port_busy "$NEXT_PORT"; do
		log "port $NEXT_PORT is in use; skipping it"
		NEXT_PORT=$((NEXT_PORT + 1))
		((++tries < 100)) || die "no free port from $BASE_PORT on"
	done
	PORT=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}
http_code() { # port path
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null || true
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# cpu_busy S: % of all CPUs busy over the next S seconds (/proc/stat)
cpu_busy() {
	local a b
	a=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	sleep "$1"
	b=$(awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN{split(a, x, " "); split(b, y, " "); t=y[1]-x[1]; i=y[2]-x[2]; printf "%.0f", (t > 0 ? 100*(t-i)/t : 0)}'
}
# settle: wait (at most SETTLE_MAX s) for a 2 s window under SETTLE_BUSY %
# CPU busy; prints "CPU N% busy, load a b c" for the report
settle() {
	local deadline=$((SECONDS + SETTLE_MAX)) b
	while :; do
		b=$(cpu_busy 2)
		((b < SETTLE_BUSY || SECONDS >= deadline)) && break
	done
	echo "CPU ${b}% busy, load $(loadavg)"
}
# CPU used by others during a run: ticks the machine spent busy minus those
# of the measured processes and of wrk.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() {
	local s=0 p v
	for p in "$@"; do
		v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || v=0
		s=$((s + ${v:-0}))
	done
	echo "$s"
}
cpu_mark() { echo "$(awk '/^cpu /{print $2+$3+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat) $(proc_ticks "$@")"; }
others_pct() { # before after wrk_cpu_seconds
	awk -v a="$1" -v b="$2" -v w="$3" -v hz="$CLK_TCK" 'BEGIN{split(a, x, " "); split(b, y, " ")
		busy = y[1]-x[1]; tot = y[2]-x[2]; o = busy - (y[3]-x[3]) - w*hz; if (o < 0) o = 0
		printf "%.0f", (tot > 0 ? 100*o/tot : 0)}'
}
dur_s() { local d=$1; case $d in *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;; esac; }
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0) print "nan"; else if(NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
minof() { sort -g | head -1; }
maxof() { sort -g | tail -1; }
# to_ms: a wrk duration (850.00us, 1.23ms, 2.01s, 1.00m) in ms
to_ms() {
	awk -v d="$1" 'BEGIN{
		if (d ~ /us$/) { sub(/us$/, "", d); printf "%.3f", d/1000 }
		else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.3f", d }
		else if (d ~ /m$/) { sub(/m$/, "", d); printf "%.3f", d*60000 }
		else if (d ~ /s$/) { sub(/s$/, "", d); printf "%.3f", d*1000 }
		else print "nan" }'
}
# to_mbs: a wrk rate (12.3KB, 4.5MB, 1.2GB per second) in MB/s (MiB, as wrk counts)
to_mbs() {
	awk -v d="$1" 'BEGIN{
		if (d ~ /GB$/) { sub(/GB$/, "", d); printf "%.1f", d*1024 }
		else if (d ~ /MB$/) { sub(/MB$/, "", d); printf "%.1f", d }
		else if (d ~ /KB$/) { sub(/KB$/, "", d); printf "%.1f", d/1024 }
		else if (d ~ /B$/) { sub(/B$/, "", d); printf "%.1f", d/1048576 }
		else print "nan" }'
}
wrk_rps() { awk '/^Requests\/sec:/{print $2}' "$1"; }
# wrk_ok_rps: req/s of 2xx/3xx answers only (a server answering errors fast
# must not look fast)
wrk_ok_rps() {
	awk '/^Requests\/sec:/{r=$2} / requests in /{t=$1} /Non-2xx or 3xx responses:/{n=$NF}
		END{printf "%.2f\n", (t > 0) ? r*(t-n)/t : 0}' "$1"
}
wrk_total() { awk '/ requests in /{print $1}' "$1"; }
wrk_mbs() { to_mbs "$(awk '/^Transfer\/sec:/{print $2}' "$1")"; }
wrk_pct() { to_ms "$(awk -v p="$2%" '$1==p{print $2; exit}' "$1")"; }
wrk_max() { to_ms "$(awk '/^ +Latency /{print $4; exit}' "$1")"; }
wrk_errors() { # non-2xx/3xx + socket errors other than "read"
	awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(/,/,""); n+=$4+$8+$10} END{print n+0}' "$1"
}
# wrk_reads: "read" socket errors: a server closing the connection after each
# response (uWSGI's --http-socket has no keep-alive) shows up there
wrk_reads() { awk '/Socket errors:/{gsub(/,/,""); n+=$6} END{print n+0}' "$1"; }
fmt0() { awk -v v="$1" 'BEGIN{if (v == "nan" || v == "") print "—"; else printf "%.0f", v}'; }
fmt1() { awk -v v="$1" 'BEGIN{if (v == "nan" || v == "") print "—"; else printf "%.1f", v}'; }
ratio() { # a b -> a/b with 2 decimals
	awk -v a="$1" -v b="$2" 'BEGIN{if (a == "" || b == "" || a == "nan" || b == "nan" || b+0 == 0) print "—"; else printf "%.2f", a/b}'
}

# Results: one file per (id, key) under $tmp/res, so that a measurement run
# in a subshell (to survive its failure) hands back what it found.
put() { printf '%s\n' "$3" >"$tmp/res/$1.$2"; }
get() { cat "$tmp/res/$1.$2" 2>/dev/null || true; }

# ------------------------------------------------------------- build ----
FERRY_REV=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
FERRY_DIRTY=$(git -C "$repo" status --porcelain 2>/dev/null | grep -c . || true)
log "building Ferry (git $FERRY_REV, $FERRY_DIRTY uncommitted paths) and the bench tools"
# others may be editing the tree: a failed build is tried again a few times
for attempt in 1 2 3 4 5; do
	(cd "$repo" && timeout 600 go build -o "$tmp/bin/ferry" ./cmd/ferry &&
		timeout 300 go build -o "$tmp/bin/constserver" ./bench/constserver &&
		timeout 300 go build -o "$tmp/bin/slowclients" ./bench/slowclients &&
		timeout 300 go build -o "$tmp/bin/firstok" ./bench/firstok) && break
	((attempt < 5)) || die "go build failed"
	log "go build failed (the tree may be mid-edit); again in 20 s"
	sleep 20
done
FERRY_REV=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')
FERRY_DIRTY=$(git -C "$repo" status --porcelain 2>/dev/null | grep -c . || true)
FERRY=$tmp/bin/ferry
FERRY_VERSION=$("$FERRY" version 2>/dev/null | head -1)

# --------------------------------------------------------------- apps ----
# One copy per server, owned by nobody (Ferry, as root, runs an app as the
# owner of its startup file) and readable by all.
BENCH_APP=$repo/bench/apps/wsgi
head -c 4096 /dev/urandom >"$tmp/4k.bin"
head -c 1048576 /dev/urandom >"$tmp/1m.bin"
# app_copy name src -> prints the copy's path
app_copy() {
	local dst=$tmp/apps/$1
	rm -rf "$dst"
	cp -r "$2" "$dst"
	if [[ $2 == "$BENCH_APP" ]]; then
		mkdir -p "$dst/public"
		cp "$tmp/4k.bin" "$tmp/1m.bin" "$dst/public/"
	fi
	chown -R nobody:nogroup "$dst" 2>/dev/null || true
	chmod -R a+rX "$dst"
	echo "$dst"
}
# A Node cluster of 2 workers around an unchanged app.js.
cat >"$tmp/node-cluster.js" <<'EOF'
'use strict';
// node-cluster.js APP.JS: the app in a cluster of WORKERS (2) processes sharing one port.
const cluster = require('cluster');
const path = require('path');
const n = parseInt(process.env.WORKERS || '2', 10);
if (cluster.isPrimary) {
  let stopping = false;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on('exit', () => { if (Object.keys(cluster.workers).length === 0) process.exit(stopping ? 0 : 1); });
  const stop = () => { stopping = true; for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM'); setTimeout(() => process.exit(0), 5000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  require(path.resolve(process.argv[2]));
}
EOF
# node alone and the cluster run the unchanged app.js, whose listen(PORT)
# would take every interface: this preload (-r) makes a listen() without a
# host listen on 127.0.0.1 (cluster workers inherit -r through execArgv)
cat >"$tmp/loopback.js" <<'EOF'
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === 'number' || /^[0-9]+$/.test(String(args[0]))) && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
EOF
# wrk scripts: a unique query per request (per thread too), so that no cache
# or coalescing layer sees the same URL twice
cat >"$tmp/sleep.lua" <<'EOF'
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/sleep?ms=50&t=" .. id .. "." .. n)
end
EOF
cat >"$tmp/mix.lua" <<'EOF'
-- 1 request in 10 to the cacheable /cached, 9 to uncacheable unique URLs
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local n = 0
function request()
  n = n + 1
  if n % 10 == 0 then return wrk.format("GET", "/cached") end
  return wrk.format("GET", "/dynamic?t=" .. id .. "." .. n)
end
EOF

# ------------------------------------------------------------ servers ----
# A server instance has an id (also its process-tracking name), a kind, a
# port and an app copy; its main pid is in $tmp/srv/ID.main. Kinds:
#   ferry passenger gunicorn uwsgi puma unicorn node cluster nginx varnish constserver constepoll
#
# launch id dir cmd...: run cmd in dir, in the background, output to
# $tmp/out/ID.log
launch() {
	local id=$1 dir=$2
	shift 2
	(cd "$dir" && exec "$@" </dev/null >"$tmp/out/$id.log" 2>&1) &
	echo "$!" >"$tmp/srv/$id.main"
	track "$id" "$!"
}
main_pid() { cat "$tmp/srv/$1.main" 2>/dev/null || true; }
kind_of() { cat "$tmp/srv/$1.kind" 2>/dev/null || true; }

FERRY_ARGS=(-e production --python "$PY" --access-log off --max-pool-size 2 --min-instances 2 --address 127.0.0.1)
PASSENGER_ARGS=(--engine builtin --max-pool-size 2 --min-instances 2 --address 127.0.0.1 -e production
	--python "$PY" --nodejs "$NODE" --ruby "$RUBY"
	--disable-security-update-check --disable-anonymous-telemetry)

# start id kind port appdir [extra args]: launch a server
start_server() {
	local id=$1 kind=$2 port=$3 app=$4
	shift 4
	echo "$kind" >"$tmp/srv/$id.kind"
	echo "$port" >"$tmp/srv/$id.port"
	case $kind in
	ferry)
		mkdir -p "$tmp/reg/$id"
		launch "$id" "$tmp" "$FERRY" start "$app" --port "$port" "${FERRY_ARGS[@]}" \
			--log-file "$tmp/out/$id.ferry.log" --instance-registry-dir "$tmp/reg/$id" "$@"
		;;
	passenger)
		mkdir -p "$tmp/reg/$id" "$tmp/ptmp/$id"
		rm -f "$tmp/srv/$id.ppid"
		# TMPDIR: its temp dir (and temp-dir toucher) stay in ours
		launch "$id" "$app" env TMPDIR="$tmp/ptmp/$id" passenger start --port "$port" "${PASSENGER_ARGS[@]}" \
			--log-file "$tmp/out/$id.passenger.log" --pid-file "$tmp/srv/$id.ppid" \
			--instance-registry-dir "$tmp/reg/$id" "$@"
		;;
	gunicorn)
		launch "$id" "$app" "$PY" -m gunicorn -w 2 -b "127.0.0.1:$port" "$@" passenger_wsgi:application
		;;
	uwsgi)
		launch "$id" "$app" uwsgi --plugin python3 --http-socket "127.0.0.1:$port" --master --processes 2 \
			--wsgi-file passenger_wsgi.py --disable-logging --die-on-term --need-app "$@"
		;;
	puma)
		launch "$id" "$app" env RACK_ENV=production puma -w 2 -b "tcp://127.0.0.1:$port" -e production "$@" config.ru
		;;
	unicorn)
		printf 'worker_processes 2\n' >"$tmp/srv/$id.unicorn.rb"
		launch "$id" "$app" env RACK_ENV=production unicorn -c "$tmp/srv/$id.unicorn.rb" -E production -l "127.0.0.1:$port" config.ru
		;;
	node)
		launch "$id" "$app" env NODE_ENV=production PORT="$port" "$NODE" -r "$tmp/loopback.js" app.js
		;;
	cluster)
		launch "$id" "$app" env NODE_ENV=production PORT="$port" WORKERS=2 "$NODE" -r "$tmp/loopback.js" "$tmp/node-cluster.js" app.js
		;;
	nginx)
		local d=$tmp/nginx/$id
		mkdir -p "$d/logs"
		cat >"$d/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
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
    listen 127.0.0.1:$port;
    root $app/public;
    location = /cached {
      default_type "text/plain; charset=utf-8";
      add_header Cache-Control "public, max-age=60";
      return 200 "Hello from Ferry!\n";
    }
  }
}
EOF
		launch "$id" "$d" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
		;;
	varnish)
		# gunicorn (2 sync workers) behind it, on the port given after the app
		local bport=$1
		echo "$bport" >"$tmp/srv/$id.bport"
		(cd "$app" && exec "$PY" -m gunicorn -w 2 -b "127.0.0.1:$bport" passenger_wsgi:application \
			</dev/null >"$tmp/out/$id.gunicorn.log" 2>&1) &
		echo "$!" >"$tmp/srv/$id.backend"
		track "$id" "$!"
		mkdir -p "$tmp/varnish/$id"
		launch "$id" "$tmp" varnishd -F -j none -T none -a "127.0.0.1:$port" -b "127.0.0.1:$bport" \
			-n "$tmp/varnish/$id" -s malloc,64m
		;;
	constserver)
		launch "$id" "$tmp" "$tmp/bin/constserver" -addr "127.0.0.1:$port"
		;;
	constepoll) # the same bytes from an epoll loop per CPU: no netpoller
		launch "$id" "$tmp" "$tmp/bin/constserver" -loop epoll -addr "127.0.0.1:$port"
		;;
	*) die "unknown server kind $kind" ;;
	esac
}

passenger_core() { # watchdog pid -> its "Passenger core" child
	local p
	for p in $(children "$1"); do
		[[ $(cmdline "$p") == "Passenger core"* ]] && echo "$p"
	done
	return 0
}
passenger_toucher() {
	local f
	for f in "$tmp"/ptmp/"$1"/passenger-standalone.*/temp_dir_toucher.pid; do
		[[ ! -f $f ]] || cat "$f" || true
	done
	return 0
}
# server_pids id: the server's own processes (not the apps')
server_pids() {
	local id=$1 m wd
	m=$(main_pid "$id")
	[[ -n $m ]] || return 0
	case $(kind_of "$id") in
	ferry | gunicorn | uwsgi | puma | unicorn | cluster | constserver | constepoll) echo "$m" ;;
	passenger)
		wd=$(cat "$tmp/srv/$id.ppid" 2>/dev/null || true)
		if [[ -n $wd ]]; then
			echo "$wd"
			passenger_core "$wd"
		fi
		passenger_toucher "$id"
		;;
	node) ;;
	nginx | varnish)
		echo "$m"
		children "$m"
		;;
	esac
}
# app_pids id: the processes running the app
app_pids() {
	local id=$1 m wd c
	m=$(main_pid "$id")
	[[ -n $m ]] || return 0
	case $(kind_of "$id") in
	ferry) descendants "$m" ;;
	passenger)
		wd=$(cat "$tmp/srv/$id.ppid" 2>/dev/null || true)
		[[ -n $wd ]] || return 0
		for c in $(passenger_core "$wd"); do descendants "$c"; done
		;;
	gunicorn | uwsgi | puma | unicorn | cluster) children "$m" ;;
	node) echo "$m" ;;
	varnish)
		c=$(cat "$tmp/srv/$id.backend" 2>/dev/null || true)
		if [[ -n $c ]]; then
			echo "$c"
			children "$c"
		fi
		;;
	nginx | constserver | constepoll) ;;
	esac
}
# front_pids id: Passenger's `passenger start` (ruby), which stays in the
# foreground to tail the log; counted apart from its agents
front_pids() { [[ $(kind_of "$1") == passenger ]] && main_pid "$1"; return 0; }

# admin API of a Ferry instance
ferry_api() { # id path
	local inst
	inst=$(ls -d "$tmp/reg/$1"/ferry-* 2>/dev/null | head -1)
	[[ -n $inst && -S $inst/admin.sock ]] || return 0
	curl -s --max-time 5 -H "Authorization: Bearer $(tr -d '[:space:]' <"$inst/read.token")" \
		--unix-socket "$inst/admin.sock" "http://x$2" 2>/dev/null || true
}
ferry_instance() { ls -d "$tmp/reg/$1"/ferry-* 2>/dev/null | head -1; }
ferry_cache() { # id -> "hits misses"
	ferry_api "$1" /pool | jq -r '[.apps[0].turbocache.hits // 0, .apps[0].turbocache.misses // 0] | join(" ")' 2>/dev/null || echo "0 0"
}
# app_count id: app processes ready to serve
app_count() {
	local id=$1 p n=0
	case $(kind_of "$id") in
	ferry) ferry_api "$id" /pool | jq '[.apps[].processes[]? | select(.state == "serving")] | length' 2>/dev/null || echo 0 ;;
	passenger) # workers, not the Ruby preloader
		for p in $(app_pids "$id"); do
			[[ $(cmdline "$p") == *[Pp]reloader* ]] || n=$((n + 1))
		done
		echo "$n"
		;;
	varnish) children "$(cat "$tmp/srv/$id.backend" 2>/dev/null || echo 0)" | grep -c . || true ;;
	nginx | constserver | constepoll) echo 2 ;;
	*) app_pids "$id" | grep -c . || true ;;
	esac
}
want_apps() { case $(kind_of "$1") in node) echo 1 ;; *) echo 2 ;; esac; }
track_all() { # id
	# shellcheck disable=SC2046
	track "$1" $(server_pids "$1") $(app_pids "$1") $(front_pids "$1")
}
# wait_ready id path: 200 on path, then the app processes (bounded)
wait_ready() {
	local id=$1 path=$2 port m deadline=$((SECONDS + READY_TIMEOUT)) want got=0
	port=$(cat "$tmp/srv/$id.port")
	m=$(main_pid "$id")
	while :; do
		kill -0 "$m" 2>/dev/null || {
			log "$id exited before answering; its output:"
			tail -n 20 "$tmp/out/$id"*.log >&2 || true
			return 1
		}
		[[ $(http_code "$port" "$path") == 200 ]] && break
		((SECONDS < deadline)) || {
			log "$id: no 200 on $path within ${READY_TIMEOUT}s"
			tail -n 20 "$tmp/out/$id"*.log >&2 || true
			return 1
		}
		sleep 0.2
	done
	want=$(want_apps "$id")
	while ((SECONDS < deadline)); do
		got=$(app_count "$id")
		((got >= want)) && break
		http_code "$port" "$path" >/dev/null # some spawn on demand
		sleep 0.2
	done
	((got >= want)) || log "WARNING: $id has $got of $want app processes after ${READY_TIMEOUT}s"
	track_all "$id"
	check_loopback "$id"
}
# check_loopback id: every TCP listener of the server's processes is on loopback
check_loopback() {
	local id=$1 p bad=""
	for p in $(server_pids "$1") $(app_pids "$1") $(front_pids "$1"); do
		bad+=$(ss -ltnpH 2>/dev/null | grep "pid=$p," | awk '{print $4}' | grep -Ev '^(127\.|\[::1\]|\[::ffff:127\.)' || true)
	done
	[[ -z $bad ]] || die "$id listens beyond loopback: $bad"
}
stop_server() { # id
	local id=$1 m b
	m=$(main_pid "$id")
	track_all "$id"
	[[ -z $m ]] || kill -TERM "$m" 2>/dev/null || true
	b=$(cat "$tmp/srv/$id.backend" 2>/dev/null || true)
	[[ -z $b ]] || kill -TERM "$b" 2>/dev/null || true
	if ! wait_gone "$id" "$STOP_TIMEOUT"; then
		log "$id: still running after ${STOP_TIMEOUT}s: $(alive_tracked "$id" | tr '\n' ' ')-> SIGKILL"
		kill_tracked "$id" KILL
		sleep 0.3
	fi
	[[ -z $m ]] || wait "$m" 2>/dev/null || true
	[[ -z $b ]] || wait "$b" 2>/dev/null || true
	return 0
}

# sampler id: every SAMPLE_INTERVAL, "server_rss_kb" into $tmp/res/ID.samples
# (and tracks what it sees); stops when $tmp/res/ID.stop appears (bounded)
start_sampler() {
	local id=$1
	rm -f "$tmp/res/$id.stop"
	(
		set +e
		end=$((SECONDS + 900))
		while ((SECONDS < end)) && [[ ! -e $tmp/res/$id.stop ]]; do
			s=$(server_pids "$id")
			# shellcheck disable=SC2086
			echo "$(sum_kb rss_kb $s)" >>"$tmp/res/$id.samples"
			sleep "$SAMPLE_INTERVAL"
		done
	) &
	echo "$!" >"$tmp/res/$id.sampler"
	track sampler "$!"
}
stop_sampler() {
	local p
	touch "$tmp/res/$1.stop"
	p=$(cat "$tmp/res/$1.sampler" 2>/dev/null || true)
	[[ -z $p ]] || wait "$p" 2>/dev/null || true
	return 0
}

# run_wrk id port path out [wrk options...]: one bounded wrk run; out.cpu
# gets the % of the CPUs others used meanwhile
run_wrk() {
	local id=$1 port=$2 path=$3 out=$4 before after wcpu TIMEFORMAT='%3U %3S' pids
	shift 4
	pids=$(server_pids "$id"; app_pids "$id")
	# shellcheck disable=SC2086
	before=$(cpu_mark $pids)
	{ time timeout $(($(dur_s "$DURATION") + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" \
		"http://127.0.0.1:$port$path" >"$out" 2>&1; } 2>"$out.time" || {
		log "wrk failed:"
		cat "$out" >&2
		return 1
	}
	# shellcheck disable=SC2086
	after=$(cpu_mark $pids)
	wcpu=$(awk '{print $1 + $2}' "$out.time")
	others_pct "$before" "$after" "$wcpu" >"$out.cpu"
}
# measure id label path [wrk options...]: warm-up, then RUNS runs (a noisy
# one again, at most NOISY_RETRIES times); results under id
measure() {
	local id=$1 path=$3 port i f o attempt rps=() lat=()
	shift 3
	port=$(cat "$tmp/srv/$id.port")
	put "$id" load "$(settle)"
	log "$id: warm-up $WARMUP on $path ($(get "$id" load))"
	DURATION=$WARMUP run_wrk "$id" "$port" "$path" "$tmp/res/$id.warmup" "$@" || return 1
	for ((i = 1; i <= RUNS; i++)); do
		f=$tmp/res/$id.run$i
		attempt=0
		while :; do
			run_wrk "$id" "$port" "$path" "$f" "$@" || return 1
			o=$(cat "$f.cpu")
			if ((o > OTHERS_MAX && attempt < NOISY_RETRIES)); then
				attempt=$((attempt + 1))
				log "$id run $i: $(wrk_rps "$f") req/s, but others used $o% of the CPUs: again"
				echo "run $i attempt $attempt: $(wrk_rps "$f") req/s while others used $o%" >>"$tmp/res/$id.noisy"
				settle >/dev/null
				continue
			fi
			break
		done
		log "$id run $i: $(wrk_rps "$f") req/s, p99 $(wrk_pct "$f" 99) ms, errors $(wrk_errors "$f"), others used $o% CPU"
	done
	summarize "$id"
}
# summarize id: medians etc. of the runs into results
summarize() {
	local id=$1 i f
	local rps="" p50="" p99="" mx="" mbs="" errs=0 reads=0 others=""
	for ((i = 1; i <= RUNS; i++)); do
		f=$tmp/res/$id.run$i
		[[ -f $f ]] || continue
		rps+="$(wrk_ok_rps "$f")"$'\n'
		p50+="$(wrk_pct "$f" 50)"$'\n'
		p99+="$(wrk_pct "$f" 99)"$'\n'
		mx+="$(wrk_max "$f")"$'\n'
		mbs+="$(wrk_mbs "$f")"$'\n'
		errs=$((errs + $(wrk_errors "$f")))
		reads=$((reads + $(wrk_reads "$f")))
		others+="$(cat "$f.cpu")%, "
	done
	put "$id" rps "$(grep . <<<"$rps" | median)"
	put "$id" rps_min "$(grep . <<<"$rps" | minof)"
	put "$id" rps_max "$(grep . <<<"$rps" | maxof)"
	put "$id" p50 "$(grep . <<<"$p50" | median)"
	put "$id" p99 "$(grep . <<<"$p99" | median)"
	put "$id" p99_min "$(grep . <<<"$p99" | minof)"
	put "$id" p99_max "$(grep . <<<"$p99" | maxof)"
	put "$id" max "$(grep . <<<"$mx" | maxof)"
	put "$id" mbs "$(grep . <<<"$mbs" | median)"
	if ((reads)); then put "$id" errors "$errs (+$reads closed)"; else put "$id" errors "$errs"; fi
	put "$id" others "${others%, }"
	put "$id" ok 1
}
# memory id: after the load, RSS of the server's processes and PSS of the apps'
memory() {
	local id=$1 s a f
	s=$(server_pids "$id")
	a=$(app_pids "$id")
	f=$(front_pids "$id")
	# shellcheck disable=SC2086
	put "$id" srv_rss "$(sum_kb rss_kb $s)"
	# shellcheck disable=SC2086
	put "$id" app_pss "$(sum_kb pss_kb $a)"
	put "$id" app_n "$(grep -c . <<<"$a" || true)"
	# shellcheck disable=SC2086
	put "$id" front_rss "$(sum_kb rss_kb $f)"
	put "$id" srv_peak "$(sort -n "$tmp/res/$id.samples" 2>/dev/null | tail -1)"
	put "$id" srv_list "$(for p in $s; do printf '%s `%s` %s MiB; ' "$p" "$(cmdline "$p" | cut -c1-50 | sed 's/ *$//')" "$(mib "$(rss_kb "$p")")"; done)"
	put "$id" app_list "$(for p in $a; do printf '%s `%s` PSS %s MiB; ' "$p" "$(cmdline "$p" | cut -c1-50 | sed 's/ *$//')" "$(mib "$(pss_kb "$p")")"; done)"
}

# bench id kind label app path [start args...] -- [wrk options...]: start,
# wait, measure, memory, stop, in a subshell so that a failure is recorded
# and the run goes on. BEFORE_STOP (a function name) runs before the stop.
BEFORE_STOP=
bench() {
	local id=$1 kind=$2 label=$3 app=$4 path=$5 sargs=() wargs=() rc
	shift 5
	while (($#)) && [[ $1 != -- ]]; do
		sargs+=("$1")
		shift
	done
	(($#)) && shift
	wargs=("$@")
	put "$id" label "$label"
	put "$id" kind "$kind"
	if ! selected "$id"; then
		put "$id" skipped 1
		return 0
	fi
	alloc_port
	log "== $label ($id) on 127.0.0.1:$PORT"
	set +e
	(
		set -e
		t0=$SECONDS
		start_server "$id" "$kind" "$PORT" "$app" "${sargs[@]}"
		wait_ready "$id" "$path"
		put "$id" ready "$((SECONDS - t0))"
		start_sampler "$id"
		measure "$id" "$label" "$path" "${wargs[@]}"
		stop_sampler "$id"
		memory "$id"
		if [[ -n $BEFORE_STOP ]]; then "$BEFORE_STOP" "$id"; fi
	)
	rc=$?
	set -e
	stop_sampler "$id"
	stop_server "$id"
	if ((rc)); then
		log "$id FAILED (rc $rc); see $tmp/out/$id*.log"
		put "$id" failed "$(tail -n 5 "$tmp/out/$id"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
	fi
	return 0
}

# ------------------------------------------------------------ tables ----
RESULTS_MD=$tmp/tables.md
DETAILS_MD=$tmp/details.md
: >"$RESULTS_MD"
: >"$DETAILS_MD"
emit() { # text to stdout and the results
	printf '%s\n' "$*" | tee -a "$RESULTS_MD"
}
status_of() { # id -> "" when measured, else why not
	if [[ -n $(get "$1" skipped) ]]; then
		echo "skipped (ONLY)"
	elif [[ -n $(get "$1" failed) ]]; then
		echo "**failed**: $(get "$1" failed | cut -c1-120)"
	elif [[ -z $(get "$1" ok) ]]; then echo "not measured"; fi
}
# details id: per-run lines for the details section
details() {
	local id=$1 i f
	{
		echo "#### $(get "$id" label) ($id)"
		echo
		[[ -n $(get "$id" failed) ]] && echo "- FAILED: $(get "$id" failed)"
		echo "- before the warm-up: $(get "$id" load); ready after ~$(get "$id" ready)s"
		for ((i = 1; i <= RUNS; i++)); do
			f=$tmp/res/$id.run$i
			[[ -f $f ]] || continue
			echo "- run $i: $(wrk_rps "$f") req/s, $(wrk_total "$f") requests, $(awk '/^Transfer\/sec:/{print $2}' "$f")/s, p50 $(wrk_pct "$f" 50) ms, p99 $(wrk_pct "$f" 99) ms, max $(wrk_max "$f") ms, non-2xx $(awk '/Non-2xx/{print $NF; f=1} END{if(!f) print 0}' "$f"), $(grep -o 'Socket errors:.*' "$f" || echo 'no socket errors'); others used $(cat "$f.cpu")% of the CPUs"
		done
		[[ -f $tmp/res/$id.noisy ]] && echo "- discarded (noisy) and run again: $(paste -sd';' "$tmp/res/$id.noisy")"
		[[ -n $(get "$id" srv_list) ]] && echo "- server processes after the load: $(get "$id" srv_list)"
		[[ -n $(get "$id" app_list) ]] && echo "- app processes after the load: $(get "$id" app_list)"
		[[ -n $(get "$id" extra) ]] && echo "- $(get "$id" extra)"
		echo
	} >>"$DETAILS_MD"
}

# throughput_table title ferry_id id...: req/s median, min–max, p99, errors,
# Ferry ÷ this
throughput_table() {
	local title=$1 fid=$2 id st f_rps
	shift 2
	f_rps=$(get "$fid" rps)
	emit "| $title | req/s (median) | min–max | p99 ms (median) | errors | Ferry ÷ this | CPU and load before; others' CPU each run |"
	emit "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
	for id in "$fid" "$@"; do
		st=$(status_of "$id")
		if [[ -n $st ]]; then
			emit "| $(get "$id" label) | $st | | | | | |"
			continue
		fi
		emit "| $(get "$id" label) | **$(fmt0 "$(get "$id" rps)")** | $(fmt0 "$(get "$id" rps_min)")–$(fmt0 "$(get "$id" rps_max)") | $(fmt1 "$(get "$id" p99)") | $(get "$id" errors) | $(ratio "$f_rps" "$(get "$id" rps)") | $(get "$id" load); $(get "$id" others) |"
		details "$id"
	done
	emit ""
}

# ------------------------------------------------------------ scenarios ----
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T0=$SECONDS
log "results will be appended to $RESULTS_DIR/run-$(date -u +%F).md; temp dir $tmp"

HELLO_WSGI=$repo/examples/hello-wsgi
HELLO_RACK=$repo/examples/hello-rack
HELLO_NODE=$repo/examples/hello-node
MEM_IDS=()

if wants hello; then
	emit "## 1. Hello world (req/s, higher is better)"
	emit ""
	emit "\`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\` on \`/\` of examples/hello-{wsgi,rack,node}, 2 app processes per server, $RUNS runs after a $WARMUP warm-up. Ferry ÷ this > 1: Ferry serves more."
	emit ""
	for k in ferry passenger gunicorn uwsgi; do
		bench "hw-$k" "$k" "$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; gunicorn) echo "gunicorn -w 2 (sync)" ;; uwsgi) echo "uWSGI --processes 2 --http-socket" ;; esac)" \
			"$(app_copy "hw-$k" "$HELLO_WSGI")" /
		MEM_IDS+=("hw-$k")
	done
	throughput_table "WSGI" hw-ferry hw-passenger hw-gunicorn hw-uwsgi
	for k in ferry passenger puma unicorn; do
		bench "hr-$k" "$k" "$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; puma) echo "puma -w 2 (threads 0:5, its default)" ;; unicorn) echo "unicorn, 2 workers" ;; esac)" \
			"$(app_copy "hr-$k" "$HELLO_RACK")" /
		MEM_IDS+=("hr-$k")
	done
	throughput_table "Rack" hr-ferry hr-passenger hr-puma hr-unicorn
	for k in ferry passenger node cluster; do
		bench "hn-$k" "$k" "$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; node) echo "node app.js alone (1 process)" ;; cluster) echo "node cluster, 2 workers" ;; esac)" \
			"$(app_copy "hn-$k" "$HELLO_NODE")" / $([[ $k == passenger ]] && echo "--app-type node --startup-file app.js")
		MEM_IDS+=("hn-$k")
	done
	throughput_table "Node" hn-ferry hn-passenger hn-node hn-cluster
fi

# Cacheable endpoint. Extra facts per server, before it stops.
cache_facts() {
	local id=$1 c t
	case $(kind_of "$id") in
	ferry)
		c=$(ferry_cache "$id")
		t=$(cat "$tmp"/res/"$id".warmup "$tmp"/res/"$id".run* 2>/dev/null | awk '/ requests in /{s+=$1} END{print s+0}')
		put "$id" extra "turbocache counters (admin API): hits ${c% *}, misses ${c#* } over $t requests (warm-up and runs, as wrk counted them)"
		;;
	passenger)
		t=$(PASSENGER_INSTANCE_REGISTRY_DIR=$tmp/reg/$id timeout 20 passenger-status --show=pool 2>/dev/null |
			awk '/Processed:/{for(i=1;i<=NF;i++) if($i=="Processed:") s+=$(i+1)} END{print s+0}' || true)
		put "$id" extra "requests the app processes saw (passenger-status): ${t:-?} of $(cat "$tmp"/res/"$id".warmup "$tmp"/res/"$id".run* 2>/dev/null | awk '/ requests in /{s+=$1} END{print s+0}') (the rest: turbocache hits)"
		;;
	varnish)
		c=$(varnishstat -n "$tmp/varnish/$id" -1 -f MAIN.cache_hit -f MAIN.cache_miss 2>/dev/null | awk '{printf "%s %s, ", $1, $2}')
		put "$id" extra "varnishstat: ${c%, }"
		;;
	esac
	if [[ $(kind_of "$id") == ferry ]]; then mix_ferry "$id"; fi
	return 0
}
# mix_ferry id: on the same Ferry, RUNS runs of 90% uncacheable requests
mix_ferry() {
	local id=$1 port i f b a hits miss total rps=() hr=() hps=() chr=()
	port=$(cat "$tmp/srv/$id.port")
	put mix load "$(settle)"
	log "$id: mixed load (1 in 10 cacheable) ($(get mix load))"
	for ((i = 1; i <= RUNS; i++)); do
		f=$tmp/res/mix.run$i
		b=$(ferry_cache "$id")
		run_wrk "$id" "$port" / "$f" -s "$tmp/mix.lua" || return 1
		a=$(ferry_cache "$id")
		hits=$((${a% *} - ${b% *}))
		miss=$((${a#* } - ${b#* }))
		total=$(wrk_total "$f")
		rps+=("$(wrk_ok_rps "$f")")
		hr+=("$(awk -v h="$hits" -v t="$total" 'BEGIN{printf "%.1f", t ? 100*h/t : 0}')")
		chr+=("$(awk -v h="$hits" -v t="$total" 'BEGIN{printf "%.1f", t ? 100*h/(t/10) : 0}')")
		hps+=("$(awk -v h="$hits" -v d="$(dur_s "$DURATION")" 'BEGIN{printf "%.0f", h/d}')")
		echo "- mixed run $i: $(wrk_rps "$f") req/s, $total requests, turbocache hits $hits, misses $miss, p99 $(wrk_pct "$f" 99) ms, errors $(wrk_errors "$f"); others used $(cat "$f.cpu")%" >>"$tmp/res/mix.lines"
		log "$id mixed run $i: $(wrk_rps "$f") req/s, hits $hits of $total"
	done
	put mix rps "$(printf '%s\n' "${rps[@]}" | median)"
	put mix rps_range "$(fmt0 "$(printf '%s\n' "${rps[@]}" | minof)")–$(fmt0 "$(printf '%s\n' "${rps[@]}" | maxof)")"
	put mix hitrate "$(printf '%s\n' "${hr[@]}" | median)"
	put mix cached_hitrate "$(printf '%s\n' "${chr[@]}" | median)"
	put mix hitrps "$(printf '%s\n' "${hps[@]}" | median)"
	put mix ok 1
}

if wants cache; then
	emit "## 2. Cacheable endpoint (req/s, higher is better)"
	emit ""
	emit "\`GET /cached\` of bench/apps/wsgi (answers \`Cache-Control: public, max-age=60\`), same wrk load. Ferry and Passenger with their turbocache (on by default), Varnish 7 (\`-s malloc,64m\`, default VCL) in front of gunicorn -w 2, nginx \`return 200\`, a bare Go net/http server (bench/constserver) and the same Go program with an epoll loop per CPU instead of net/http and its netpoller (\`constserver -loop epoll\`) answering the same bytes from memory as ceilings."
	emit ""
	BEFORE_STOP=cache_facts
	bench c-ferry ferry "Ferry (turbocache)" "$(app_copy c-ferry "$BENCH_APP")" /cached
	bench c-passenger passenger "Passenger 6 (turbocache)" "$(app_copy c-passenger "$BENCH_APP")" /cached
	alloc_port
	bport=$PORT
	bench c-varnish varnish "Varnish + gunicorn -w 2" "$(app_copy c-varnish "$BENCH_APP")" /cached "$bport"
	bench c-nginx nginx "nginx \`return 200\` (ceiling)" "$(app_copy c-nginx "$BENCH_APP")" /cached
	bench c-const constserver "bare Go net/http constant (ceiling)" "$tmp" /cached
	bench c-epoll constepoll "Go epoll loop constant (ceiling without the netpoller)" "$tmp" /cached
	BEFORE_STOP=
	throughput_table "server" c-ferry c-passenger c-varnish c-nginx c-const c-epoll
	if [[ -n $(get mix ok) ]]; then
		emit "Ferry with 90% of the requests uncacheable (\`wrk -s mix.lua\`: every 10th request \`/cached\`, the others \`/dynamic?t=N\`, unique, \`Cache-Control: no-store\`):"
		emit ""
		emit "| mix | req/s (median) | min–max | turbocache hits, % of all requests | % of /cached requests that were hits | hits/s | before |"
		emit "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
		emit "| Ferry, 10% cacheable | **$(fmt0 "$(get mix rps)")** | $(get mix rps_range) | $(get mix hitrate)% | $(get mix cached_hitrate)% | $(get mix hitrps) | $(get mix load) |"
		emit ""
		{
			echo "#### Ferry, mixed load"
			echo
			cat "$tmp/res/mix.lines"
			echo
		} >>"$DETAILS_MD"
	fi
fi

if wants static; then
	emit "## 3. Static files (req/s and MiB/s, higher is better)"
	emit ""
	emit "A 4 KiB and a 1 MiB file (random bytes) in bench/apps/wsgi's \`public/\`, same wrk load. Passenger's builtin engine does not serve \`public/\` itself (requests reach the app), so for Passenger the app serves the file: \`/files/NAME\` reads \`public/NAME\` in Python."
	emit ""
	# one server instance per size, to keep each measurement's own warm-up and memory
	for size in 4k 1m; do
		bench "s$size-ferry" ferry "Ferry, $size" "$(app_copy "s$size-ferry" "$BENCH_APP")" "/$size.bin"
		bench "s$size-nginx" nginx "nginx, $size" "$(app_copy "s$size-nginx" "$BENCH_APP")" "/$size.bin"
		bench "s$size-passenger" passenger "Passenger 6 (the app serves it), $size" "$(app_copy "s$size-passenger" "$BENCH_APP")" "/files/$size.bin"
	done
	emit "| file | server | req/s (median) | min–max | MiB/s | p99 ms | errors | Ferry ÷ this | before; others' CPU each run |"
	emit "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for size in 4k 1m; do
		for k in ferry nginx passenger; do
			id=s$size-$k
			st=$(status_of "$id")
			if [[ -n $st ]]; then
				emit "| $size | $(get "$id" label) | $st | | | | | | |"
				continue
			fi
			emit "| $size | $(get "$id" label | sed 's/, [0-9a-z]*$//') | **$(fmt0 "$(get "$id" rps)")** | $(fmt0 "$(get "$id" rps_min)")–$(fmt0 "$(get "$id" rps_max)") | $(fmt0 "$(get "$id" mbs)") | $(fmt1 "$(get "$id" p99)") | $(get "$id" errors) | $(ratio "$(get "s$size-ferry" rps)" "$(get "$id" rps)") | $(get "$id" load); $(get "$id" others) |"
			details "$id"
		done
	done
	emit ""
fi

if wants queue; then
	emit "## 4. A 50 ms endpoint at $CONNECTIONS connections (queueing)"
	emit ""
	emit "\`GET /sleep?ms=50&t=N\` (a unique URL per request, \`wrk -s sleep.lua --timeout 10s\`): each app process serves one at a time, so 2 processes top out at 40 req/s and most requests wait in a queue. Throughput: higher is better; p99: lower is better (Ferry ÷ this < 1: Ferry's p99 is lower)."
	emit ""
	for k in ferry passenger gunicorn; do
		bench "q-$k" "$k" "$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; gunicorn) echo "gunicorn -w 2 (sync)" ;; esac)" \
			"$(app_copy "q-$k" "$BENCH_APP")" /sleep -- -s "$tmp/sleep.lua" --timeout 10s
	done
	emit "| server | req/s (median) | min–max | p50 ms | p99 ms (median) | p99 min–max | max ms | errors | Ferry ÷ this, req/s | Ferry ÷ this, p99 | before |"
	emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
	for k in ferry passenger gunicorn; do
		id=q-$k
		st=$(status_of "$id")
		if [[ -n $st ]]; then
			emit "| $(get "$id" label) | $st | | | | | | | | | |"
			continue
		fi
		emit "| $(get "$id" label) | **$(fmt1 "$(get "$id" rps)")** | $(fmt1 "$(get "$id" rps_min)")–$(fmt1 "$(get "$id" rps_max)") | $(fmt0 "$(get "$id" p50)") | **$(fmt0 "$(get "$id" p99)")** | $(fmt0 "$(get "$id" p99_min)")–$(fmt0 "$(get "$id" p99_max)") | $(fmt0 "$(get "$id" max)") | $(get "$id" errors) | $(ratio "$(get q-ferry rps)" "$(get "$id" rps)") | $(ratio "$(get q-ferry p99)" "$(get "$id" p99)") | $(get "$id" load) |"
		details "$id"
	done
	emit ""
fi

# cold id kind label src [args]: COLD_REPS × (launch → first 200 → stop)
cold() {
	local id=$1 kind=$2 label=$3 src=$4 r app t0 t1 ms=() fpid load rc
	shift 4
	put "$id" label "$label"
	put "$id" kind "$kind"
	selected "$id" || {
		put "$id" skipped 1
		return 0
	}
	app=$(app_copy "$id" "$src")
	load=$(settle)
	put "$id" load "$load"
	for ((r = 1; r <= COLD_REPS; r++)); do
		alloc_port
		set +e
		(
			set -e
			"$tmp/bin/firstok" -url "http://127.0.0.1:$PORT/" -interval 2ms -timeout "${READY_TIMEOUT}s" >"$tmp/res/$id.first$r" &
			fpid=$!
			track firstok "$fpid"
			t0=$(date +%s%N)
			start_server "$id" "$kind" "$PORT" "$app" "$@"
			wait "$fpid"
			t1=$(cat "$tmp/res/$id.first$r")
			echo $(((t1 - t0) / 1000000)) >"$tmp/res/$id.cold$r"
		)
		rc=$?
		set -e
		stop_server "$id"
		kill_tracked firstok TERM
		if ((rc)); then
			log "$id rep $r FAILED"
			put "$id" failed "no 200 within ${READY_TIMEOUT}s: $(tail -n 3 "$tmp/out/$id"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-200)"
			return 0
		fi
		ms+=("$(cat "$tmp/res/$id.cold$r")")
		log "$id rep $r: first 200 after ${ms[-1]} ms"
	done
	put "$id" cold_med "$(printf '%s\n' "${ms[@]}" | median)"
	put "$id" cold_min "$(printf '%s\n' "${ms[@]}" | minof)"
	put "$id" cold_max "$(printf '%s\n' "${ms[@]}" | maxof)"
	put "$id" cold_all "$(printf '%s, ' "${ms[@]}" | sed 's/, $//')"
	put "$id" ok 1
}
if wants coldstart; then
	emit "## 5. Cold start: launch to first 200 (ms, lower is better)"
	emit ""
	emit "The hello apps; the clock starts when the server command is launched and stops at the first 200 on \`/\` (bench/firstok polls every 2 ms with a fresh connection); then the server is stopped completely. $COLD_REPS repetitions, median. Same options as in scenario 1 (2 app processes; the first 200 needs one). Ferry ÷ this < 1: Ferry is up sooner."
	emit ""
	cold_ids=()
	for pair in "wsgi:ferry" "wsgi:passenger" "wsgi:gunicorn" "wsgi:uwsgi" "rack:ferry" "rack:passenger" "rack:puma" "rack:unicorn" "node:ferry" "node:passenger" "node:node" "node:cluster"; do
		t=${pair%%:*}
		k=${pair#*:}
		case $t in wsgi) src=$HELLO_WSGI ;; rack) src=$HELLO_RACK ;; node) src=$HELLO_NODE ;; esac
		lbl=$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; gunicorn) echo "gunicorn -w 2" ;; uwsgi) echo "uWSGI --processes 2" ;; puma) echo "puma -w 2" ;; unicorn) echo "unicorn, 2 workers" ;; node) echo "node app.js" ;; cluster) echo "node cluster, 2 workers" ;; esac)
		extra=()
		[[ $t == node && $k == passenger ]] && extra=(--app-type node --startup-file app.js)
		cold "cs-$t-$k" "$k" "$t: $lbl" "$src" "${extra[@]}"
		cold_ids+=("cs-$t-$k")
	done
	emit "| app: server | median ms | min–max | each | Ferry ÷ this | before |"
	emit "| --- | ---: | ---: | --- | ---: | --- |"
	for id in "${cold_ids[@]}"; do
		st=$(status_of "$id")
		if [[ -n $st ]]; then
			emit "| $(get "$id" label) | $st | | | | |"
			continue
		fi
		t=${id#cs-}
		t=${t%%-*}
		emit "| $(get "$id" label) | **$(fmt0 "$(get "$id" cold_med)")** | $(get "$id" cold_min)–$(get "$id" cold_max) | $(get "$id" cold_all) | $(ratio "$(get "cs-$t-ferry" cold_med)" "$(get "$id" cold_med)") | $(get "$id" load) |"
	done
	emit ""
fi

if wants hello; then
	emit "## 6. Memory after the hello-world load (MiB, lower is better)"
	emit ""
	emit "Server: RSS (VmRSS) of the server's own processes after the load (and the peak sampled every ${SAMPLE_INTERVAL}s during it): Ferry's core; Passenger's watchdog, core and temp-dir toucher (its \`passenger start\` Ruby front-end, which stays to tail the log, is shown apart); the master of gunicorn, uWSGI, puma, unicorn and the node cluster. Apps: PSS (smaps_rollup) of all app processes summed, which counts shared pages once (Ferry and Passenger Ruby: including the preloader the workers were forked from). Ferry ÷ this < 1: Ferry uses less."
	emit ""
	emit "| app: server | server RSS | peak during load | Passenger front-end | app processes | app PSS sum | Ferry ÷ this, server | Ferry ÷ this, apps |"
	emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for id in "${MEM_IDS[@]}"; do
		st=$(status_of "$id")
		t=$(case $id in hw-*) echo WSGI ;; hr-*) echo Rack ;; hn-*) echo Node ;; esac)
		if [[ -n $st ]]; then
			emit "| $t: $(get "$id" label) | $st | | | | | | |"
			continue
		fi
		fid=${id%%-*}-ferry
		srv=$(get "$id" srv_rss)
		emit "| $t: $(get "$id" label) | $([[ $srv == 0 ]] && echo "— (none)" || mib "$srv") | $([[ $srv == 0 ]] && echo "—" || mib "$(get "$id" srv_peak)") | $([[ $(get "$id" front_rss) == 0 ]] && echo "—" || mib "$(get "$id" front_rss)") | $(get "$id" app_n) | $(mib "$(get "$id" app_pss)") | $([[ $srv == 0 ]] && echo "—" || ratio "$(get "$fid" srv_rss)" "$srv") | $(ratio "$(get "$fid" app_pss)" "$(get "$id" app_pss)") |"
	done
	emit ""
fi

# slow id kind label: baseline runs, then runs beside SLOW_CLIENTS slow clients
slow() {
	local id=$1 kind=$2 label=$3 rc
	shift 3
	put "$id" label "$label"
	put "$id" kind "$kind"
	selected "$id" || {
		put "$id" skipped 1
		return 0
	}
	alloc_port
	log "== slow clients: $label ($id) on 127.0.0.1:$PORT"
	set +e
	(
		set -e
		local t0=$SECONDS
		start_server "$id" "$kind" "$PORT" "$(app_copy "$id" "$BENCH_APP")" "$@"
		wait_ready "$id" /
		put "$id" ready "$((SECONDS - t0))"
		start_sampler "$id"
		measure "$id" "$label" /
		stop_sampler "$id"
		for f in "$tmp"/res/"$id".run*; do mv "$f" "${f/.run/.base}"; done
		rm -f "$tmp/res/$id.samples"
		# the slow clients stay through the runs (plus margins), bounded
		local d=$((RUNS * ($(dur_s "$DURATION") + 4) + SETTLE_MAX + 20))
		"$tmp/bin/slowclients" -addr "127.0.0.1:$PORT" -n "$SLOW_CLIENTS" -duration "${d}s" >"$tmp/res/$id.slowclients" 2>&1 &
		local sp=$!
		track slowclients "$sp"
		sleep 3
		start_sampler "$id"
		put "$id" base_load "$(get "$id" load)"
		measure "$id" "$label" /
		stop_sampler "$id"
		memory "$id"
		kill -TERM "$sp" 2>/dev/null
		wait "$sp" 2>/dev/null
		local f base=""
		for f in "$tmp"/res/"$id".base[0-9]; do
			base+="$(wrk_rps "$f") req/s (p99 $(wrk_pct "$f" 99) ms, errors $(wrk_errors "$f"), others $(cat "$f.cpu")%); "
		done
		put "$id" extra "without slow clients (before: $(get "$id" base_load)): ${base%; }. $(cat "$tmp/res/$id.slowclients")"
		true
	)
	rc=$?
	set -e
	stop_sampler "$id"
	kill_tracked slowclients TERM
	stop_server "$id"
	if ((rc)); then
		log "$id FAILED (rc $rc)"
		put "$id" failed "$(tail -n 5 "$tmp/out/$id"*.log 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
	fi
	return 0
}
base_rps() { # id -> median of the baseline runs
	local f
	for f in "$tmp"/res/"$1".base[0-9]; do wrk_ok_rps "$f"; done | median
}
if wants slowclients; then
	emit "## 7. $SLOW_CLIENTS slow clients beside the load (req/s kept, higher is better)"
	emit ""
	emit "bench/slowclients keeps $SLOW_CLIENTS connections open: half send a 1 KiB POST to \`/upload\` 16 bytes every 100 ms, half \`GET /big\` (1 MiB from the app) and read it 1 KiB every 100 ms through a 4 KiB receive buffer. Beside them, the usual wrk load on \`/\` of bench/apps/wsgi; first $RUNS runs without them, then $RUNS with."
	emit ""
	for k in ferry passenger gunicorn; do
		slow "sc-$k" "$k" "$(case $k in ferry) echo "Ferry" ;; passenger) echo "Passenger 6 (builtin engine)" ;; gunicorn) echo "gunicorn -w 2 (sync)" ;; esac)"
	done
	emit "| server | req/s without (median) | req/s with slow clients (median) | min–max with | kept | wrk errors with | server RSS peak with | slow connections opened / exchanges completed / errors | Ferry ÷ this, with |"
	emit "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
	for k in ferry passenger gunicorn; do
		id=sc-$k
		st=$(status_of "$id")
		if [[ -n $st ]]; then
			emit "| $(get "$id" label) | $st | | | | | | | |"
			continue
		fi
		b=$(base_rps "$id")
		emit "| $(get "$id" label) | $(fmt0 "$b") | **$(fmt0 "$(get "$id" rps)")** | $(fmt0 "$(get "$id" rps_min)")–$(fmt0 "$(get "$id" rps_max)") | **$(awk -v a="$(get "$id" rps)" -v b="$b" 'BEGIN{printf "%.0f%%", (b > 0) ? 100*a/b : 0}')** | $(get "$id" errors) | $(mib "$(get "$id" srv_peak)") MiB | $(sed -n 's/.*opened \([0-9]*\), exchanges completed \([0-9]*\), refused \([0-9]*\), errors \([0-9]*\).*/\1 \/ \2 \/ \4/p' "$tmp/res/$id.slowclients") | $(ratio "$(get sc-ferry rps)" "$(get "$id" rps)") |"
		details "$id"
	done
	emit ""
fi

# ------------------------------------------------------------ report ----
rack_v=$($RUBY -e 'require "rack"; print Rack.release' 2>/dev/null || echo '?')
versions() {
	echo "- Ferry: $FERRY_VERSION (git $FERRY_REV; $FERRY_DIRTY uncommitted paths in the working tree at build time), $(go version | sed 's/^go version //')"
	echo "- Passenger: $(passenger --version 2>/dev/null | head -1) (Standalone, \`--engine builtin\`)"
	echo "- Python $($PY -c 'import sys; print(sys.version.split()[0])'); gunicorn $($PY -m gunicorn --version 2>&1 | awk '{print $NF}' | tr -d '()'); uWSGI $(uwsgi --version 2>/dev/null)"
	echo "- $($RUBY -v | awk '{print $1, $2}'); Rack $rack_v; $(puma --version 2>/dev/null | head -1); unicorn $(unicorn -v 2>/dev/null | awk '{print $NF}')"
	echo "- Node.js $($NODE --version)"
	echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'); $(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(.*\) revision.*/\1/')"
	echo "- $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'); $(h2load --version 2>&1 | head -1) (installed; no HTTP/2 scenario yet)"
}
elapsed=$(((SECONDS - T0) / 60))
report=$tmp/report.md
{
	echo "## Run $started"
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` with RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP THREADS=$THREADS CONNECTIONS=$CONNECTIONS SCENARIOS=\"$SCENARIOS\"${ONLY:+ ONLY=\"$ONLY\"} COLD_REPS=$COLD_REPS SLOW_CLIENTS=$SLOW_CLIENTS OTHERS_MAX=$OTHERS_MAX NOISY_RETRIES=$NOISY_RETRIES; took $elapsed min."
	echo
	echo "Machine: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), nproc $(nproc), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"). wrk, the servers and the apps share the same CPUs; other people's work on the machine adds noise: each table says how busy the CPUs were (2 s window) and the load average before each server's measurement, and how much CPU other processes took during each run (a run over $OTHERS_MAX% was run again, at most $NOISY_RETRIES time(s); see the details)."
	echo
	echo "Versions:"
	echo
	versions
	echo
	echo "Servers and options (APP = a copy of the app owned by nobody; PORT on 127.0.0.1):"
	echo
	echo "- Ferry: \`ferry start APP --port PORT ${FERRY_ARGS[*]}\` (the app runs as nobody, the owner of its startup file)"
	echo "- Passenger: \`passenger start --port PORT ${PASSENGER_ARGS[*]}\` (Node: \`--app-type node --startup-file app.js\`)"
	echo "- gunicorn: \`$PY -m gunicorn -w 2 -b 127.0.0.1:PORT passenger_wsgi:application\`; uWSGI: \`uwsgi --plugin python3 --http-socket 127.0.0.1:PORT --master --processes 2 --wsgi-file passenger_wsgi.py --disable-logging --die-on-term\`"
	echo "- puma: \`puma -w 2 -b tcp://127.0.0.1:PORT -e production config.ru\`; unicorn: \`unicorn -c (worker_processes 2) -E production -l 127.0.0.1:PORT config.ru\`"
	echo "- node: \`PORT=PORT node app.js\`; cluster: the same app.js in a \`cluster\` of 2 workers (script in run.sh)"
	echo "- nginx: 2 workers, \`sendfile on\`, \`access_log off\`, \`keepalive_requests 1000000\`; Varnish: \`varnishd -F -j none -a 127.0.0.1:PORT -b 127.0.0.1:GUNICORN -s malloc,64m\`, default VCL"
	echo
	cat "$RESULTS_MD"
	echo "### Details"
	echo
	cat "$DETAILS_MD"
} >"$report"
mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/run-$(date -u +%F).md
if [[ ! -s $out ]]; then
	printf '# bench/run.sh: Ferry against its peers\n\nGenerated by `bench/run.sh` (see bench/README.md); one section per run, the latest last.\n\n' >"$out"
fi
cat "$report" >>"$out"
log "done in $elapsed min; results appended to $out"
ok=1
