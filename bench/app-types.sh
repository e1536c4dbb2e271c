#!/usr/bin/env bash
# bench/app-types.sh: hello-world requests/second for Ruby (Rack) and Node.js,
# Ferry against the usual way of serving each, 2 processes each, loopback only:
#
#   Rack (examples/hello-rack, Debian's ruby + ruby-rack):
#     ferry-rack     Ferry --max-pool-size 2 --min-instances 2 -e production (smart spawning)
#     puma-t1        puma -w 2 -t 1:1 (Debian's puma; one thread per worker, like Ferry's processes)
#     puma-t5        puma -w 2 -t 0:5 (puma's default thread pool)
#     unicorn        unicorn, worker_processes 2 (Debian's; skipped if not installable)
#   Node.js (examples/hello-node, Debian's nodejs):
#     ferry-node     Ferry --max-pool-size 2 --min-instances 2 -e production
#     node           plain `node app.js`, one process (PORT from the environment)
#     node-cluster   bench/node-cluster.js: the same app in a `cluster` of 2 workers
#
# Each server: warm-up $WARMUP, then $RUNS × wrk -t$THREADS -c$CONNECTIONS
# -d$DURATION; the RSS of the server's own processes (Ferry: the core) is
# sampled every 0.5 s, its peak reported. Every server is started, measured and
# stopped before the next one; an EXIT trap stops whatever is still running.
# Shared helpers: bench/lib.sh.
#
# Usage: bench/app-types.sh     (needs root only for apt-get)
# Environment knobs (defaults in brackets):
#   BASE_PORT [18101]  ports BASE_PORT, +1, ... one per server
#   SERVERS ["ferry-rack puma-t1 puma-t5 unicorn ferry-node node node-cluster"]
#   RUNS [3]  DURATION [10s]  THREADS [2]  CONNECTIONS [50]  WARMUP [2s]
#   SETTLE_MAX [30]  SETTLE_BUSY [20]  before each measurement, wait up to SETTLE_MAX s
#     for a 2 s window with under SETTLE_BUSY % CPU busy (others may be running tests)
#   OTHERS_MAX [8]  NOISY_RETRIES [4]  a run during which other processes used more
#     than OTHERS_MAX % of the CPUs is discarded and run again (at most NOISY_RETRIES times)
#   KEEP_TMP [0]  RESULTS_DIR [bench/results]
#
# Output: markdown tables on stdout, also appended (with machine info and tool
# versions) to $RESULTS_DIR/app-types-YYYY-MM-DD.md (UTC date).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BASE_PORT=${BASE_PORT:-18101}
SERVERS=${SERVERS:-"ferry-rack puma-t1 puma-t5 unicorn ferry-node node node-cluster"}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RACK_SRC=$repo/examples/hello-rack
NODE_SRC=$repo/examples/hello-node
NODE_CLUSTER_JS=$repo/bench/node-cluster.js

wants() { [[ " $SERVERS " == *" $1 "* ]]; }
need wrk have wrk
need curl have curl
need jq have jq
if wants ferry-rack || wants puma-t1 || wants puma-t5 || wants unicorn; then
	need ruby have ruby
	need ruby-rack ruby -e 'require "rack"'
fi
if wants puma-t1 || wants puma-t5; then need puma have puma; fi
if wants ferry-node || wants node || wants node-cluster; then need nodejs have node; fi
install_needed
if wants unicorn && ! have unicorn >/dev/null; then
	# optional: only if Debian has it at hand
	if [[ $(id -u) == 0 ]] && apt-cache show unicorn >/dev/null 2>&1; then
		log "installing unicorn (optional)"
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends unicorn ||
			log "unicorn could not be installed; skipped"
	fi
	if ! have unicorn >/dev/null; then
		log "unicorn not available; skipped"
		SERVERS=$(sed 's/\bunicorn\b//' <<<"$SERVERS")
	fi
fi
have go >/dev/null || die "go is not installed"
[[ -f $RACK_SRC/config.ru ]] || die "$RACK_SRC/config.ru not found"
[[ -f $NODE_SRC/app.js ]] || die "$NODE_SRC/app.js not found"
[[ -f $NODE_CLUSTER_JS ]] || die "$NODE_CLUSTER_JS not found"

bench_init
build_ferry
bench_tables_init
BENCH_OTHERS_COL=1 # the table gets a column: CPU used by other processes during each run

# ---------------------------------------------------- servers: Ferry ----
ferry_rack_start() { ferry_launch ferry_rack "$1" "$RACK_SRC" --max-pool-size 2 --min-instances 2 -e production; }
define_ferry_server ferry_rack
ferry_node_start() { ferry_launch ferry_node "$1" "$NODE_SRC" --max-pool-size 2 --min-instances 2 -e production; }
define_ferry_server ferry_node

# ------------------------------------------------- servers: the others ----
# plain_launch name app_src env... -- command...: copy app_src to
# $tmp/app-NAME and run the command there in the background, output to
# $tmp/NAME.log. Sets SPID[name], MAIN_PID, LOGF.
plain_launch() {
	local name=$1 src=$2 app=$tmp/app-$1 envs=()
	shift 2
	while [[ $1 != -- ]]; do envs+=("$1"); shift; done
	shift
	rm -rf "$app"
	cp -r "$src" "$app"
	(cd "$app" && exec env "${envs[@]}" "$@" </dev/null >"$tmp/$name.log" 2>&1) &
	SPID[$name]=$!
	track "$name" "$!"
	MAIN_PID=$!
	LOGF=$tmp/$name.log
}
# plain_problems name: lines of the server's output that look like trouble
plain_problems() {
	local f=$tmp/$1.log pat='error|exception|warn|fatal|exited' n
	n=$(grep -Eic "$pat" "$f" || true)
	echo "- $1.log: $(wc -l <"$f") lines; lines matching /$pat/i: $n"
	if ((n)); then
		echo
		echo '```'
		grep -Ei "$pat" "$f" | head -n 20 | cut -c1-300
		echo '```'
	fi
}
# define_master_server name: a master process (SPID) with its app processes
# as children (puma, unicorn, node cluster)
define_master_server() {
	local n=$1
	eval "
${n}_server_pids() { echo \"\${SPID[$n]:-}\"; }
${n}_app_pids() { [[ -n \${SPID[$n]:-} ]] && children \"\${SPID[$n]}\"; return 0; }
${n}_stop() { stop_server $n \"\${SPID[$n]:-}\"; }
${n}_problems() { plain_problems $n; }
"
}

puma_t1_start() {
	plain_launch puma_t1 "$RACK_SRC" RACK_ENV=production -- \
		puma -w 2 -t 1:1 -b "tcp://127.0.0.1:$1" -e production config.ru
}
define_master_server puma_t1
puma_t5_start() {
	plain_launch puma_t5 "$RACK_SRC" RACK_ENV=production -- \
		puma -w 2 -t 0:5 -b "tcp://127.0.0.1:$1" -e production config.ru
}
define_master_server puma_t5

unicorn_start() {
	printf 'worker_processes 2\n' >"$tmp/unicorn.conf.rb"
	plain_launch unicorn "$RACK_SRC" RACK_ENV=production -- \
		unicorn -c "$tmp/unicorn.conf.rb" -E production -l "127.0.0.1:$1" config.ru
}
define_master_server unicorn

node_start() {
	plain_launch node "$NODE_SRC" NODE_ENV=production "PORT=$1" -- node app.js
}
node_server_pids() { return 0; } # the app process is all there is
node_app_pids() { echo "${SPID[node]:-}"; }
node_stop() { stop_server node "${SPID[node]:-}"; }
node_problems() { plain_problems node; }

node_cluster_start() {
	plain_launch node_cluster "$NODE_SRC" NODE_ENV=production "PORT=$1" WORKERS=2 -- \
		node "$NODE_CLUSTER_JS" "$tmp/app-node_cluster/app.js"
}
define_master_server node_cluster

# ---------------------------------------------------------- benchmark ----
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
port=$BASE_PORT
for s in $SERVERS; do
	case $s in
	ferry-rack) bench_server ferry_rack "Rack: Ferry (2 processes)" "$port" 2 ;;
	puma-t1) bench_server puma_t1 "Rack: puma -w 2 -t 1:1" "$port" 2 ;;
	puma-t5) bench_server puma_t5 "Rack: puma -w 2 -t 0:5" "$port" 2 ;;
	unicorn) bench_server unicorn "Rack: unicorn, 2 workers" "$port" 2 ;;
	ferry-node) bench_server ferry_node "Node: Ferry (2 processes)" "$port" 2 ;;
	node) bench_server node "Node: node app.js (1 process)" "$port" 1 ;;
	node-cluster) bench_server node_cluster "Node: cluster, 2 workers" "$port" 2 ;;
	*) die "unknown server: $s" ;;
	esac
	port=$((port + 1))
done

# ------------------------------------------------------------ report ----
header='| server | req/s median | min–max | server RSS (peak) | app PSS (sum) | errors | CPU used by others, each run |
| --- | ---: | ---: | ---: | ---: | ---: | --- |'
report=$tmp/report.md
rack_v=$(ruby -e 'require "rack"; print Rack.release' 2>/dev/null || echo '?')
{
	echo "## Run $started"
	echo
	echo "\`bench/app-types.sh\`: examples/hello-rack and examples/hello-node, 127.0.0.1;"
	echo "each server: warm-up $WARMUP, then $RUNS × \`wrk -t$THREADS -c$CONNECTIONS -d$DURATION\`."
	echo
	echo "$header"
	cat "$TABLE"
	echo
	echo "server RSS: peak of the server's own processes sampled every ${SAMPLE_INTERVAL}s during warm-up and runs"
	echo "(Ferry: the core; puma, unicorn: the master; node cluster: the primary; plain node: none)."
	echo "app PSS: sum of Pss from /proc/PID/smaps_rollup of the app processes after the load"
	echo "(Ferry Rack: 2 workers + the preloader they were forked from; Ferry Node: 2 processes; puma, unicorn, cluster: the 2 workers; node: the process)."
	echo "errors: wrk non-2xx responses + socket errors over all runs."
	echo "CPU used by others: % of the machine's CPU time used during each run by processes other than the server's and wrk"
	echo "(other people's tests, and this script's own RSS sampler, a few %): a slow run with a high figure shared the CPUs;"
	echo "a run above $OTHERS_MAX% was discarded and run again, at most $NOISY_RETRIES times (listed in the details)."
	echo
	echo "Commands (APP = a copy of the example in a temp dir, PORT = the server's port):"
	echo
	echo "- Ferry Rack: \`ferry start APP --port PORT --address 127.0.0.1 --max-pool-size 2 --min-instances 2 -e production\`"
	echo "- puma: \`cd APP && RACK_ENV=production puma -w 2 -t 1:1 -b tcp://127.0.0.1:PORT -e production config.ru\` (and \`-t 0:5\`)"
	echo "- unicorn: \`cd APP && RACK_ENV=production unicorn -c unicorn.conf.rb -E production -l 127.0.0.1:PORT config.ru\` with \`worker_processes 2\`"
	echo "- Ferry Node: \`ferry start APP --port PORT --address 127.0.0.1 --max-pool-size 2 --min-instances 2 -e production\`"
	echo "- node: \`cd APP && NODE_ENV=production PORT=PORT node app.js\`"
	echo "- node cluster: \`cd APP && NODE_ENV=production PORT=PORT WORKERS=2 node bench/node-cluster.js APP/app.js\`"
	echo
	machine_line
	echo "wrk and the servers share the same CPUs; other work on the machine may add noise."
	echo
	echo "Versions: $(ferry_build_line);"
	echo "$(go_version); $(ruby -v 2>/dev/null | awk '{print $1, $2}'); Rack $rack_v;"
	echo "$(puma --version 2>/dev/null | head -1); $(unicorn -v 2>/dev/null | head -1 || echo 'unicorn: not installed'); Node.js $(node --version 2>/dev/null); $(wrk_version)."
	echo
	echo "Command: \`$(printf '%q ' "$0" | sed 's/ $//')\` (SERVERS=\"$SERVERS\" RUNS=$RUNS DURATION=$DURATION THREADS=$THREADS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP BASE_PORT=$BASE_PORT OTHERS_MAX=$OTHERS_MAX NOISY_RETRIES=$NOISY_RETRIES)"
	echo
	cat "$DETAILS"
} >"$report"

out=$(results_append app-types "app-types: Ferry vs puma/unicorn (Rack) and node/cluster (Node.js), hello world" "$report")

echo
echo "$header"
cat "$TABLE"
echo
log "details and versions appended to $out"
ok=1
