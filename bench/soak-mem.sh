#!/usr/bin/env bash
# bench/soak-mem.sh: the core's memory under a mixed soak (issue 21,
# "Memory"): what the core's RSS does over SOAK seconds of mixed traffic,
# and what grows. Ferry serves bench/apps/wsgi (2 processes, access log on
# as users run it, to a file) with a 4 KiB file in public/; one
# `wrk -c$CONNECTIONS` runs a Lua mix, per 10 requests: GET / (app), GET
# /cached (turbocache hit), GET /cached?t=N (cacheable and unique: a new
# turbocache entry each), GET /dynamic?t=N (unique, no-store), GET /4k.bin
# (static), GET /big?kb=64 (a 64 KiB app response), POST /upload (16 KiB
# body), GET /nope (404), 2 x GET /.
#
# It records the core's VmRSS every 0.5 s, runtime.MemStats (from
# /debug/pprof/heap?debug=1) and an in-use heap profile (after a GC) before
# and after the soak, and after IDLE seconds of idle; GODEBUG=gctrace=1 goes
# to the core's stderr. The heap diff (`go tool pprof -diff_base`) says which
# allocation sites hold the growth.
#
# Usage: sudo bench/soak-mem.sh    Knobs: SOAK [20] IDLE [10] SOAK_CONNECTIONS [32]
#   UNIQUE_CACHED [1] (0: the /cached?t=N share asks one fixed cacheable
#   URL instead, so the turbocache does not fill) KEEP_TMP [0] RESULTS_DIR [bench/results]
# Output: $RESULTS_DIR/soak-mem-YYYY-MM-DD.md (appended).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOAK=${SOAK:-20}
UNIQUE_CACHED=${UNIQUE_CACHED:-1}
export UNIQUE_CACHED
IDLE=${IDLE:-10}
CONNECTIONS=${SOAK_CONNECTIONS:-32}
need wrk have wrk
need curl have curl
need jq have jq
need golang-go have go
install_needed
bench_init
build_ferry
out=$RESULTS_DIR/soak-mem-$(date -u +%F).md
report=$tmp/report.md
emit() { echo "$*" >>"$report"; }

app=$tmp/app
cp -r "$repo/bench/apps/wsgi" "$app"
mkdir -p "$app/public"
head -c 4096 /dev/urandom >"$app/public/4k.bin"
chown -R nobody:nogroup "$app"
cat >"$tmp/soak.lua" <<'EOF'
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local n = 0
local up = string.rep("x", 16384)
function request()
  n = n + 1
  local k = n % 10
  local u = id .. "." .. n
  if k == 0 then return wrk.format("GET", "/cached")
  elseif k == 1 and os.getenv("UNIQUE_CACHED") == "0" then return wrk.format("GET", "/cached?k=1")
  elseif k == 1 then return wrk.format("GET", "/cached?t=" .. u)
  elseif k == 2 then return wrk.format("GET", "/dynamic?t=" .. u)
  elseif k == 3 then return wrk.format("GET", "/4k.bin")
  elseif k == 4 then return wrk.format("GET", "/big?kb=64")
  elseif k == 5 then return wrk.format("POST", "/upload", {["Content-Type"] = "application/octet-stream"}, up)
  elseif k == 6 then return wrk.format("GET", "/nope")
  end
  return wrk.format("GET", "/")
end
EOF

port=18800
while port_busy "$port"; do port=$((port + 1)); done
mkdir -p "$tmp/reg"
GODEBUG=gctrace=1 "$tmp/ferry" start "$app" --port "$port" --address 127.0.0.1 -e production --python "$PY" \
	--max-pool-size 2 --min-instances 2 --access-log "$tmp/access.log" \
	--log-file "$tmp/ferry.log" --instance-registry-dir "$tmp/reg" </dev/null >"$tmp/ferry.out" 2>"$tmp/gctrace.txt" &
MAIN_PID=$!
track ferry "$MAIN_PID"
for ((i = 0; i < READY_TIMEOUT * 4; i++)); do
	[[ $(http_code "$port") == 200 ]] && break
	sleep 0.25
done
[[ $(http_code "$port") == 200 ]] || die "Ferry did not answer"
inst=$(sed -n '/ instance=/{s/.* instance=\([^ ]*\).*/\1/p;q}' "$tmp/ferry.log")
admin() { curl -s --max-time 30 -H "Authorization: Bearer $(cat "$inst/admin.token")" --unix-socket "$inst/admin.sock" "http://x$1"; }
memstats() { # label: the MemStats lines of the heap profile's debug text
	admin '/debug/pprof/heap?debug=1' | sed -n '/^# runtime.MemStats/,$p' |
		grep -E '^# (Alloc|Sys|HeapSys|HeapInuse|HeapIdle|HeapReleased|HeapObjects|Stack|MSpan|MCache|BuckHashSys|GCSys|OtherSys|NextGC|NumGC) ' |
		sed "s/^# /$1 /" || true
}
snapshot() { # label
	admin '/debug/pprof/heap?gc=1' >"$tmp/heap.$1.pprof"
	memstats "$1" >"$tmp/memstats.$1"
	echo "$(rss_kb "$MAIN_PID")" >"$tmp/rss.$1"
	admin '/debug/pprof/goroutine?debug=1' >"$tmp/goroutines.$1.txt" || true
	head -1 "$tmp/goroutines.$1.txt" >"$tmp/goroutines.$1"
}
# a little of every kind first, so that lazily built things exist before "start"
timeout 30 wrk -t1 -c2 -d1s -s "$tmp/soak.lua" "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
sleep 1
snapshot start
la=$(loadavg)
: >"$tmp/rss.series"
(
	while [[ ! -e $tmp/sampler.stop ]]; do
		echo "$(date +%s.%N | cut -c1-14) $(rss_kb "$MAIN_PID")" >>"$tmp/rss.series"
		sleep 0.5
	done
) &
SAMPLER_PID=$!
timeout $((SOAK + 30)) wrk -t2 -c"$CONNECTIONS" -d"${SOAK}s" -s "$tmp/soak.lua" "http://127.0.0.1:$port/" >"$tmp/wrk.txt" 2>&1 || true
snapshot end
sleep "$IDLE"
snapshot idle
stop_sampler
peak=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$tmp/rss.series")

emit "## bench/soak-mem.sh, $(date -u '+%F %H:%M') UTC"
emit ""
emit "Command: \`UNIQUE_CACHED=$UNIQUE_CACHED SOAK=$SOAK IDLE=$IDLE SOAK_CONNECTIONS=$CONNECTIONS bench/soak-mem.sh\`. Ferry $(ferry_build_line); load average before the soak $la (2 CPUs shared with other work). wrk: $(grep -E 'requests in|Requests/sec|Non-2xx' "$tmp/wrk.txt" | tr -s ' ' | paste -sd';')."
emit ""
emit "| | before | after ${SOAK}s soak | after ${IDLE}s idle |"
emit "| --- | ---: | ---: | ---: |"
emit "| core VmRSS MiB (peak during soak $(mib "$peak")) | $(mib "$(cat "$tmp/rss.start")") | $(mib "$(cat "$tmp/rss.end")") | $(mib "$(cat "$tmp/rss.idle")") |"
emit "| goroutines | $(awk '{print $NF}' "$tmp/goroutines.start") | $(awk '{print $NF}' "$tmp/goroutines.end") | $(awk '{print $NF}' "$tmp/goroutines.idle") |"
for k in HeapInuse HeapIdle HeapReleased HeapSys HeapObjects Stack MSpan GCSys OtherSys Sys NextGC NumGC; do
	a=$(awk -v k="$k" '$2==k{print $4}' "$tmp/memstats.start")
	b=$(awk -v k="$k" '$2==k{print $4}' "$tmp/memstats.end")
	c=$(awk -v k="$k" '$2==k{print $4}' "$tmp/memstats.idle")
	case $k in HeapObjects | NumGC) emit "| $k | $a | $b | $c |" ;; *) emit "| $k MiB | $(mib $((a / 1024))) | $(mib $((b / 1024))) | $(mib $((c / 1024))) |" ;; esac
done
emit ""
emit "In-use heap growth by allocation site (\`go tool pprof -top -sample_index=inuse_space -diff_base heap.start heap.end\`):"
emit ""
emit '```'
go tool pprof -top -nodecount=25 -sample_index=inuse_space -diff_base "$tmp/heap.start.pprof" "$tmp/ferry" "$tmp/heap.end.pprof" 2>/dev/null | head -35 >>"$report" || true
emit '```'
emit ""
emit "Last gctrace lines of the soak:"
emit ""
emit '```'
grep '^gc ' "$tmp/gctrace.txt" | tail -n 5 >>"$report" || true
emit '```'
emit ""
emit "RSS series (s since start, MiB): $(awk 'NR==1{t0=$1} {printf "%s%.1f:%.1f", (NR>1?" ":""), $1-t0, $2/1024}' "$tmp/rss.series")"
stop_server ferry "$MAIN_PID"
mkdir -p "$RESULTS_DIR"
{
	echo
	cat "$report"
} >>"$out"
cat "$report"
log "appended to $out"
ok=1
