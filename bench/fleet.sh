#!/usr/bin/env bash
# bench/fleet.sh: a fleet of Ferry hosts behind HAProxy, then nginx, on one
# Linux box, under a steady bounded load; deploys, scale-in, a crash and a
# host coming back. Run as root (network namespaces); not in CI.
#
#   sudo bench/fleet.sh                 # results in bench/results/fleet-DATE.md
#   HOSTS=4 RATE=300 sudo bench/fleet.sh
#
# Layout, all in namespaces of its own (the machine's own network is not
# touched; addresses are private to the namespaces):
#
#   netns fleetlb: bridge br0 10.77.0.1/24, HAProxy on 127.0.0.1:8000,
#                  nginx on 127.0.0.1:8001, the load generator (loopback)
#   netns fleet1..N: eth0 10.77.0.1N, `ferry start` of the same WSGI app on
#                  :8080, probes and metrics on :9100
#
# HAProxy checks GET /ready on :9100 every second (fall 2, rise 2), with
# `option redispatch`, `retries 3` and `retry-on conn-failure empty-response
# response-timeout 503`. nginx (open source: no active checks) uses
# `max_fails=1 fail_timeout=5s` and `proxy_next_upstream error timeout
# http_502 http_503 http_504`. The load: bench/fleetload, RATE requests/s
# from CONC workers, GET / (the app sleeps 20 ms and answers "host version
# pid"), each request logged.
#
# Scenarios, for each front:
#   1. rolling deploy of a new app version to every host, one at a time
#      (`ferry restart --rolling`), then `ferry upgrade` of host1's binary:
#      0 failed requests, every host answering with the new version after;
#   2. scale-in: SIGTERM to the last host: 0 failed;
#   3. kill -9 of the last host's core: failed ≤ its requests in flight, and
#      how long until the balancer stopped sending to it;
#   4. that host started again: when /ready first said 200 and when the
#      balancer first sent it a request (HAProxy: only after /ready).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HOSTS=${HOSTS:-3}
RATE=${RATE:-150}
CONC=${CONC:-12}
BOOT=${BOOT:-2}   # seconds the app takes to load (imports), so "booting" is visible
PROCS=${PROCS:-3} # app processes per host
PY=${PY:-/usr/bin/python3}
((HOSTS >= 3)) || die "HOSTS must be at least 3"
[[ $(id -u) == 0 ]] || die "run as root: it creates network namespaces"

need haproxy have haproxy
need nginx have nginx
need curl have curl
need iproute2 have ip
install_needed

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fleet.XXXXXX")
chmod 755 "$tmp"
LB=fleetlb
cleanup() {
	local i pid
	for f in "$tmp"/host*/ferry.pid "$tmp"/haproxy.pid "$tmp"/nginx.pid; do
		[[ -f $f ]] && pid=$(cat "$f") && kill -TERM "$pid" 2>/dev/null || true
	done
	[[ -n ${LOAD_PID:-} ]] && kill -TERM "$LOAD_PID" 2>/dev/null || true
	sleep 1
	for i in $(seq 1 "$HOSTS"); do
		ip netns pids "fleet$i" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
		ip netns del "fleet$i" 2>/dev/null || true
	done
	ip netns pids "$LB" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns del "$LB" 2>/dev/null || true
	if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
in_lb() { ip netns exec "$LB" "$@"; }
host_ip() { echo "10.77.0.$((10 + $1))"; }

# ------------------------------------------------------------- build ----
log "building ferry (v1, v2, v3: the same code, three version stamps) and the load generator"
for v in v1 v2 v3; do
	(cd "$repo" && go build -ldflags "-X main.version=fleet-$v" -o "$tmp/ferry-$v" ./cmd/ferry)
done
(cd "$repo" && go build -o "$tmp/fleetload" ./bench/fleetload)
FERRY_REV=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')

# ---------------------------------------------------------- network ----
log "network: $LB with br0 10.77.0.1/24, fleet1..$HOSTS"
ip netns add "$LB"
ip -n "$LB" link set lo up
ip -n "$LB" link add br0 type bridge
ip -n "$LB" addr add 10.77.0.1/24 dev br0
ip -n "$LB" link set br0 up
for i in $(seq 1 "$HOSTS"); do
	ip netns add "fleet$i"
	ip -n "fleet$i" link set lo up
	ip -n "$LB" link add "vf$i" type veth peer name eth0 netns "fleet$i"
	ip -n "$LB" link set "vf$i" master br0 up
	ip -n "fleet$i" addr add "$(host_ip "$i")/24" dev eth0
	ip -n "fleet$i" link set eth0 up
done

# -------------------------------------------------------------- app ----
# One copy per host (each deploy writes its own VERSION), and one ferry
# binary per host (an upgrade replaces only that host's).
for i in $(seq 1 "$HOSTS"); do
	h=$tmp/host$i
	mkdir -p "$h/app" "$h/reg"
	cat >"$h/app/passenger_wsgi.py" <<EOF
import os, time
HOST = os.environ.get("FLEET_HOST", "?")
time.sleep(float(os.environ.get("FLEET_BOOT", "0")))  # a real app's imports
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) as f:
    VERSION = f.read().strip()

def application(environ, start_response):
    time.sleep(0.02)
    body = ("%s %s %d\n" % (HOST, VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
EOF
	echo app-v1 >"$h/app/VERSION"
	chmod -R a+rX "$h"
	cp "$tmp/ferry-v1" "$h/ferry"
done

start_host() { # i
	local i=$1 h=$tmp/host$1 ip
	ip=$(host_ip "$i")
	rm -f "$h/ferry.pid"
	ip netns exec "fleet$i" "$h/ferry" start "$h/app" --address "$ip" --port 8080 \
		--metrics-address "$ip:9100" --environment production --spawn-method direct \
		--min-instances "$PROCS" --max-pool-size "$PROCS" --python "$PY" \
		--envvar "FLEET_HOST=host$i" --envvar "FLEET_BOOT=$BOOT" --trusted-proxies private \
		--instance-registry-dir "$h/reg" --pid-file "$h/ferry.pid" >>"$h/ferry.log" 2>&1 &
	disown $! # killed at the end; not a job to report
}
ready_code() { in_lb curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$(host_ip "$1"):9100/ready" || true; }
wait_ready() { # i -> prints the time /ready first answered 200
	local i=$1 deadline=$((SECONDS + 120))
	until [[ $(ready_code "$i") == 200 ]]; do
		((SECONDS < deadline)) || die "host$i never became ready; log: $(tail -5 "$tmp/host$i/ferry.log")"
		sleep 0.05
	done
	now
}
core_pid() { cat "$tmp/host$1/ferry.pid"; }
health_version() { in_lb curl -s -m 2 "http://$(host_ip "$1"):9100/health" | sed -n 's/.*"version": "\(.*\)".*/\1/p'; }
inflight() { # i -> requests in flight in that host's app processes
	in_lb curl -s -m 2 "http://$(host_ip "$1"):9100/metrics" | awk '/^ferry_process_sessions\{/{s+=$2} END{print s+0}'
}

log "starting $HOSTS hosts"
for i in $(seq 1 "$HOSTS"); do start_host "$i"; done
for i in $(seq 1 "$HOSTS"); do wait_ready "$i" >/dev/null; done

# ----------------------------------------------------------- fronts ----
servers_haproxy=
servers_nginx=
for i in $(seq 1 "$HOSTS"); do
	servers_haproxy+="  server host$i $(host_ip "$i"):8080 check"$'\n'
	servers_nginx+="    server $(host_ip "$i"):8080 max_fails=1 fail_timeout=5s;"$'\n'
done
cat >"$tmp/haproxy.cfg" <<EOF
global
  maxconn 2000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 2s
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout 503
frontend fe
  bind 127.0.0.1:8000
  default_backend fleet
listen stats
  bind 127.0.0.1:8404
  stats enable
  stats uri /stats
backend fleet
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 1s fall 2 rise 2 port 9100
$servers_haproxy
EOF
cat >"$tmp/nginx.conf" <<EOF
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx-body;
  proxy_temp_path $tmp/nginx-proxy;
  upstream fleet {
$servers_nginx    keepalive 32;
  }
  server {
    listen 127.0.0.1:8001;
    location / {
      proxy_pass http://fleet;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 3;
    }
  }
}
EOF
in_lb haproxy -f "$tmp/haproxy.cfg" -D -p "$tmp/haproxy.pid"
in_lb nginx -c "$tmp/nginx.conf" -p "$tmp" -g 'daemon on;'
HAPROXY_VERSION=$(haproxy -v | awk 'NR == 1 {print $3}')
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')

haproxy_status() { # i -> UP, DOWN, ...
	in_lb curl -s -m 2 'http://127.0.0.1:8404/stats;csv' | awk -F, -v s="host$1" '$1=="fleet" && $2==s {print $18}'
}

# ------------------------------------------------------------- load ----
start_load() { # name port
	# Not through in_lb: a backgrounded function would leave $! a subshell's
	# pid; `ip netns exec` execs the load generator in its own place.
	ip netns exec "$LB" "$tmp/fleetload" -url "http://127.0.0.1:$2/" -c "$CONC" -rate "$RATE" -duration 300s \
		-log "$tmp/$1.jsonl" >"$tmp/$1.out" 2>&1 &
	LOAD_PID=$!
	sleep 3
}
stop_load() {
	sleep 3
	kill -TERM "$LOAD_PID"
	wait "$LOAD_PID" || true
	LOAD_PID=
	grep -q '^requests' "$tmp/$1.out" || die "the load generator did not stop: $(cat "$tmp/$1.out")"
}
# count FILE [after] [before] -> "total failed"
count() {
	"$PY" - "$@" <<'EOF'
import json, sys
after = float(sys.argv[2]) if len(sys.argv) > 2 else 0
before = float(sys.argv[3]) if len(sys.argv) > 3 else 1e18
tot = bad = 0
errs = {}
lat = []
for line in open(sys.argv[1]):
    s = json.loads(line)
    if not (after <= s["start"] <= before):
        continue
    tot += 1
    if s.get("err") or s["status"] != 200:
        bad += 1
        k = s.get("err") or str(s["status"])
        errs[k[:80]] = errs.get(k[:80], 0) + 1
    else:
        lat.append(s["end"] - s["start"])
lat.sort()
pct = lambda q: "%.0f" % (1000 * lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else "-"
print(tot, bad, pct(0.5), pct(0.99), lat and "%.0f" % (1000 * lat[-1]) or "-", json.dumps(errs) if errs else "")
EOF
}
# versions FILE since -> "host=version ..." of each host's last answers
versions() {
	"$PY" - "$@" <<'EOF'
import json, sys
since = float(sys.argv[2]); last = {}
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s.get("host") and s["start"] >= since:
        last.setdefault(s["host"], set()).add(s["ver"])
print(" ".join("%s=%s" % (h, "/".join(sorted(v))) for h, v in sorted(last.items())))
EOF
}
# host_times FILE host after -> "first_start last_end" of requests that host answered, started after
host_times() {
	"$PY" - "$@" <<'EOF'
import json, sys
host, after = sys.argv[2], float(sys.argv[3])
first = last = None
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s.get("host") == host and s["start"] >= after:
        first = s["start"] if first is None else min(first, s["start"])
        last = s["end"] if last is None else max(last, s["end"])
print(first or "-", last or "-")
EOF
}
# last_sent FILE host -> latest start of a request that host answered
last_sent() {
	"$PY" - "$@" <<'EOF'
import json, sys
m = 0
for line in open(sys.argv[1]):
    s = json.loads(line)
    if s.get("host") == sys.argv[2]:
        m = max(m, s["start"])
print(m)
EOF
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || b == "-") print "-"; else printf "%.2f", b - a }'; }

declare -A R
last=$HOSTS
lasthost=host$last

run_front() { # name port appversion binversion
	local fe=$1 port=$2 appv=$3 binv=$4 t0 t1 i pid

	# 1. rolling deploy, then a binary upgrade of host1
	log "[$fe] 1. rolling deploy of $appv to $HOSTS hosts, then ferry upgrade of host1 to $binv"
	start_load "$fe-deploy" "$port"
	t0=$(now)
	for i in $(seq 1 "$HOSTS"); do
		echo "$appv" >"$tmp/host$i/app/VERSION"
		"$tmp/host$i/ferry" restart "$tmp/host$i/app" --rolling --instance-registry-dir "$tmp/host$i/reg" >>"$tmp/$fe-deploy.cli" 2>&1 ||
			die "rolling restart of host$i failed: $(tail -3 "$tmp/$fe-deploy.cli")"
	done
	pid=$(core_pid 1)
	cp "$tmp/ferry-$binv" "$tmp/host1/ferry.new" && mv "$tmp/host1/ferry.new" "$tmp/host1/ferry"
	"$tmp/host1/ferry" upgrade "$tmp/host1/app" --instance-registry-dir "$tmp/host1/reg" >>"$tmp/$fe-deploy.cli" 2>&1
	local deadline=$((SECONDS + 120))
	until [[ $(health_version 1) == "fleet-$binv" ]] && ! kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || die "host1 upgrade did not finish; log: $(tail -5 "$tmp/host1/ferry.log")"
		sleep 0.1
	done
	t1=$(now)
	stop_load "$fe-deploy"
	R[$fe.deploy]=$(count "$tmp/$fe-deploy.jsonl")
	R[$fe.deploy.time]=$(secs "$t0" "$t1")
	R[$fe.deploy.versions]=$(versions "$tmp/$fe-deploy.jsonl" "$t1")
	R[$fe.deploy.direct]=$(for i in $(seq 1 "$HOSTS"); do in_lb curl -s -m 5 "http://$(host_ip "$i"):8080/" | awk '{printf "%s=%s ", $1, $2}'; done)
	R[$fe.deploy.bin]=$(for i in $(seq 1 "$HOSTS"); do printf 'host%s=%s ' "$i" "$(health_version "$i")"; done)
	log "[$fe] deploy: ${R[$fe.deploy]}; versions after: ${R[$fe.deploy.versions]}; binaries: ${R[$fe.deploy.bin]}"

	# 2. scale-in
	log "[$fe] 2. SIGTERM to $lasthost"
	start_load "$fe-scalein" "$port"
	pid=$(core_pid "$last")
	t0=$(now)
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	t1=$(now)
	stop_load "$fe-scalein"
	R[$fe.scalein]=$(count "$tmp/$fe-scalein.jsonl")
	R[$fe.scalein.exit]=$(secs "$t0" "$t1")
	R[$fe.scalein.lastsent]=$(secs "$t0" "$(last_sent "$tmp/$fe-scalein.jsonl" "$lasthost")")
	log "[$fe] scale-in: ${R[$fe.scalein]}; exited after ${R[$fe.scalein.exit]} s; last request sent to it ${R[$fe.scalein.lastsent]} s after SIGTERM"
	start_host "$last"
	wait_ready "$last" >/dev/null

	# 3. kill -9, then 4. the host comes back
	log "[$fe] 3. kill -9 of $lasthost's core, 4. start it again"
	start_load "$fe-kill" "$port"
	pid=$(core_pid "$last")
	R[$fe.kill.inflight]=$(inflight "$last")
	t0=$(now)
	kill -KILL "$pid"
	local down=-
	if [[ $fe == haproxy ]]; then
		deadline=$((SECONDS + 30))
		until [[ $(haproxy_status "$last") == DOWN* ]]; do
			((SECONDS < deadline)) || break
			sleep 0.05
		done
		down=$(secs "$t0" "$(now)")
	fi
	sleep 3
	local tstart tready
	tstart=$(now)
	start_host "$last"
	tready=$(wait_ready "$last")
	sleep 6
	stop_load "$fe-kill"
	R[$fe.kill]=$(count "$tmp/$fe-kill.jsonl" "$t0" "$tstart")
	R[$fe.kill.down]=$down
	R[$fe.kill.lastsent]=$(secs "$t0" "$(last_sent "$tmp/$fe-kill.jsonl" "$lasthost" | awk -v t="$tstart" '{print ($1 < t) ? $1 : "-"}')")
	read -r first lastend < <(host_times "$tmp/$fe-kill.jsonl" "$lasthost" "$tstart")
	R[$fe.back.ready]=$(secs "$tstart" "$tready")
	R[$fe.back.first]=$(secs "$tready" "$first")
	R[$fe.back.all]=$(count "$tmp/$fe-kill.jsonl" "$tstart")
	log "[$fe] kill -9: ${R[$fe.kill]} (in flight at the kill: ${R[$fe.kill.inflight]}); marked down after ${R[$fe.kill.down]} s"
	log "[$fe] back: /ready 200 ${R[$fe.back.ready]} s after start; first request to it $(printf '%s' "${R[$fe.back.first]}") s after /ready; requests meanwhile: ${R[$fe.back.all]}"
}

run_front haproxy 8000 app-v2 v2
run_front nginx 8001 app-v3 v3

# ----------------------------------------------------------- report ----
date_s=$(date -u +%Y-%m-%d)
out=$RESULTS_DIR/fleet-$date_s.md
f1() { echo "$1" | awk '{print $1}'; }
f2() { echo "$1" | awk '{print $2}'; }
fe3() { echo "$1" | cut -d' ' -f6-; }
lat() { echo "$1" | awk '{print $3 " / " $4 " / " $5}'; }
{
	echo "# Fleet: $HOSTS Ferry hosts behind HAProxy and nginx ($date_s)"
	echo
	echo "\`sudo bench/fleet.sh\` (HOSTS=$HOSTS RATE=$RATE CONC=$CONC PROCS=$PROCS BOOT=$BOOT) on $(nproc) CPUs,"
	echo "$(uname -sr); Ferry git $FERRY_REV; HAProxy $HAPROXY_VERSION; nginx $NGINX_VERSION; $("$PY" -V)."
	echo "Each host: a network namespace, \`ferry start\` of a WSGI app ($PROCS processes, 20 ms per"
	echo "request, $BOOT s to load) with Ferry's default drain (5 + 20 + 3 s). Load: $RATE requests/s"
	echo "from $CONC workers, GET / through the balancer on loopback."
	echo
	echo "| scenario | HAProxy | nginx |"
	echo "| --- | --- | --- |"
	echo "| 1. rolling deploy of $HOSTS hosts + \`ferry upgrade\` of host1: failed / requests | $(f2 "${R[haproxy.deploy]}") / $(f1 "${R[haproxy.deploy]}") | $(f2 "${R[nginx.deploy]}") / $(f1 "${R[nginx.deploy]}") |"
	echo "| 1. app version of each host after it (asked directly) | ${R[haproxy.deploy.direct]} | ${R[nginx.deploy.direct]} |"
	echo "| 1. app versions answered through the balancer in the last 3 s | ${R[haproxy.deploy.versions]} | ${R[nginx.deploy.versions]} |"
	echo "| 1. binaries after it (\`/health\` version) | ${R[haproxy.deploy.bin]} | ${R[nginx.deploy.bin]} |"
	echo "| 1. latency p50 / p99 / max (ms) | $(lat "${R[haproxy.deploy]}") | $(lat "${R[nginx.deploy]}") |"
	echo "| 1. duration (s) | ${R[haproxy.deploy.time]} | ${R[nginx.deploy.time]} |"
	echo "| 2. SIGTERM to $lasthost: failed / requests | $(f2 "${R[haproxy.scalein]}") / $(f1 "${R[haproxy.scalein]}") | $(f2 "${R[nginx.scalein]}") / $(f1 "${R[nginx.scalein]}") |"
	echo "| 2. latency p50 / p99 / max (ms) | $(lat "${R[haproxy.scalein]}") | $(lat "${R[nginx.scalein]}") |"
	echo "| 2. last request sent to it, after SIGTERM (s) | ${R[haproxy.scalein.lastsent]} | ${R[nginx.scalein.lastsent]} |"
	echo "| 2. it exited after (s) | ${R[haproxy.scalein.exit]} | ${R[nginx.scalein.exit]} |"
	echo "| 3. \`kill -9\` of $lasthost's core: failed / requests | $(f2 "${R[haproxy.kill]}") / $(f1 "${R[haproxy.kill]}") | $(f2 "${R[nginx.kill]}") / $(f1 "${R[nginx.kill]}") |"
	echo "| 3. latency p50 / p99 / max (ms) | $(lat "${R[haproxy.kill]}") | $(lat "${R[nginx.kill]}") |"
	echo "| 3. its requests in flight at the kill | ${R[haproxy.kill.inflight]} | ${R[nginx.kill.inflight]} |"
	echo "| 3. marked down after (s; check every 1 s, fall 2) | ${R[haproxy.kill.down]} | - (no active checks) |"
	echo "| 3. last request answered by it, sent after the kill (s) | ${R[haproxy.kill.lastsent]} | ${R[nginx.kill.lastsent]} |"
	echo "| 4. restarted: \`/ready\` 200 after (s; the app loads in $BOOT s) | ${R[haproxy.back.ready]} | ${R[nginx.back.ready]} |"
	echo "| 4. first request sent to it, after \`/ready\` said 200 (s; < 0: before) | ${R[haproxy.back.first]} | ${R[nginx.back.first]} |"
	echo "| 4. failed / requests from the restart on | $(f2 "${R[haproxy.back.all]}") / $(f1 "${R[haproxy.back.all]}") | $(f2 "${R[nginx.back.all]}") / $(f1 "${R[nginx.back.all]}") |"
	for k in haproxy.deploy nginx.deploy haproxy.scalein nginx.scalein haproxy.kill nginx.kill haproxy.back.all nginx.back.all; do
		e=$(fe3 "${R[$k]}")
		[[ -n $e && $e != "${R[$k]}" ]] && echo && echo "Errors in $k: \`$e\`"
	done
} >"$out"
cat "$out"
log "wrote $out"
