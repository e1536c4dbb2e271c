#!/usr/bin/env bash
# bench/realapp.sh: real-app pages (issue 21), not hello world. At bench time
# it generates
#
#   rails   a Rails 6.1 scaffold (`rails new` + `rails generate scaffold Post
#           title:string body:text`, SQLite, production, 20 rows seeded):
#           GET /posts renders the scaffold's index (ActiveRecord query + ERB
#           + layout). Served by Ferry, Passenger, puma -w 2, unicorn (2).
#   django  a Django 3.2 project (`django-admin startproject` + an app with a
#           Post model, a ListView and a template, SQLite, DEBUG off, 20
#           rows): GET /posts/. Served by Ferry, Passenger, gunicorn -w 2,
#           uWSGI --processes 2.
#
# Everything comes from Debian's packages (no RubyGems, no PyPI): Debian's
# `rails` metapackage cannot be installed next to a non-Debian Node (it pulls
# node-* packages), so the script installs the Rails components (railties,
# activerecord, actionpack, actionview) and runs `rails new` without Bundler:
# the generated app's Gemfile and `require "bundler/setup"` are removed, and
# the gems load from Debian's rubygems-integration paths; Active Job, mailers,
# Sprockets, JavaScript and the other parts that need unpackaged gems are
# skipped with `rails new --skip-*`.
#
# Each server has 2 app processes, listens on 127.0.0.1 only, and is measured
# with wrk at LOW connections (fewer than or as many as the processes: no
# queueing) and HIGH connections (saturating them), DURATION each after a
# WARMUP, then stopped before the next starts. Besides req/s and p50/p99 it
# records the CPU time (utime+stime from /proc, all of the server's and its
# apps' processes) per request, which depends much less than req/s on what
# else runs on the machine, and the load average at each run.
#
# Usage: sudo bench/realapp.sh        (root: apt-get, apps run as nobody)
# Knobs: DURATION [8s] WARMUP [2s] LOW [2] HIGH [32] APPS ["rails django"]
#        ONLY [""] (regexp on ids such as rails-ferry, django-uwsgi)
#        FERRY_EXTRA [""] (more `ferry start` arguments)
#        ROUNDS [1] (measure every server ROUNDS times, in turn, so that
#        each server sees the machine's changing load alike; one row each)
#        KEEP_TMP [0] RESULTS_DIR [bench/results]
# Output: tables on stdout, appended with the commands to
# $RESULTS_DIR/realapp-YYYY-MM-DD.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
LOW=${LOW:-2}
HIGH=${HIGH:-32}
APPS=${APPS:-"rails django"}
ONLY=${ONLY:-}
ROUNDS=${ROUNDS:-1} # every server measured ROUNDS times, the servers in turn each round
ROUND=1
FERRY_EXTRA=${FERRY_EXTRA:-} # more `ferry start` arguments, e.g. "--spawn-method direct"
RUBY=/usr/bin/ruby
SECRET=bench-only-not-secret-0123456789abcdef0123456789abcdef

need wrk have wrk
need curl have curl
need jq have jq
need golang-go have go
need ruby-railties test -x /usr/bin/rails
need ruby-activerecord $RUBY -e 'require "active_record"'
need ruby-actionpack $RUBY -e 'require "action_controller"'
need ruby-actionview $RUBY -e 'require "action_view"'
need ruby-sqlite3 $RUBY -e 'require "sqlite3"'
need python3-django $PY -c 'import django'
need passenger have passenger
need puma have puma
need unicorn have unicorn
need gunicorn $PY -c 'import gunicorn'
need uwsgi have uwsgi
need uwsgi-plugin-python3 test -e /usr/lib/uwsgi/plugins/python3_plugin.so
install_needed
bench_init
build_ferry

selected() { [[ -z $ONLY ]] || [[ $1 =~ $ONLY ]]; }
date_utc=$(date -u +%F)
out=$RESULTS_DIR/realapp-$date_utc.md
report=$tmp/report.md
emit() { echo "$*" | tee -a "$report"; }

# ------------------------------------------------------------- the apps ----
gen_rails() {
	local d=$tmp/gen-rails
	mkdir -p "$d"
	log "rails new + generate scaffold (Debian's Rails $(rails -v 2>/dev/null | awk '{print $2}'))"
	(cd "$d" && timeout 300 rails new blog -d sqlite3 --skip-bundle --skip-git --skip-keeps \
		--skip-webpack-install --skip-javascript --skip-spring --skip-listen --skip-bootsnap \
		--skip-action-mailer --skip-action-mailbox --skip-action-text --skip-active-storage \
		--skip-action-cable --skip-sprockets --skip-test --skip-system-test >"$tmp/rails-new.log" 2>&1) ||
		{ tail -20 "$tmp/rails-new.log" >&2; die "rails new failed"; }
	local app=$d/blog
	# No Bundler (not every gem of a default Gemfile is in Debian); Active Job
	# (ruby-activejob) is not installed with railties, and the generated jobs
	# and mailers would be eager-loaded in production.
	rm -f "$app/Gemfile" "$app/Gemfile.lock"
	rm -rf "$app/app/jobs" "$app/app/mailers" "$app"/app/views/layouts/mailer.*
	sed -i 's/^require "bundler\/setup".*$//' "$app/config/boot.rb"
	sed -i 's/^Bundler.require.*$//; s/^require "active_job\/railtie"/# &/' "$app/config/application.rb"
	sed -i "1i ENV['RAILS_ENV'] ||= 'production'\nENV['SECRET_KEY_BASE'] ||= '$SECRET'" "$app/config/boot.rb"
	(cd "$app" && timeout 300 bin/rails generate scaffold Post title:string body:text >>"$tmp/rails-new.log" 2>&1 &&
		echo '20.times { |i| Post.create!(title: "Post #{i}", body: "Body of post #{i}. " * 10) }' >db/seeds.rb &&
		RAILS_ENV=production timeout 120 bin/rails db:migrate db:seed >>"$tmp/rails-new.log" 2>&1) ||
		{ tail -20 "$tmp/rails-new.log" >&2; die "rails generate/migrate failed"; }
	RAILS_APP=$app
	RAILS_PATH=/posts
}

gen_django() {
	local d=$tmp/gen-django
	mkdir -p "$d"
	log "django-admin startproject + an app (Debian's Django $($PY -c 'import django; print(django.get_version())'))"
	(cd "$d" && $PY -m django startproject mysite && cd mysite && $PY manage.py startapp posts) >"$tmp/django-new.log" 2>&1 ||
		{ tail -20 "$tmp/django-new.log" >&2; die "django startproject failed"; }
	local app=$d/mysite
	cat >>"$app/mysite/settings.py" <<'EOF'

# bench/realapp.sh: production-like
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS += ["posts"]
EOF
	cat >"$app/posts/models.py" <<'EOF'
from django.db import models


class Post(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
EOF
	cat >"$app/posts/views.py" <<'EOF'
from django.views.generic import ListView

from .models import Post


class PostList(ListView):
    model = Post
    template_name = "posts/list.html"
EOF
	mkdir -p "$app/posts/templates/posts"
	cat >"$app/posts/templates/posts/list.html" <<'EOF'
<!DOCTYPE html>
<html>
<head><title>Posts</title></head>
<body>
<h1>Posts</h1>
<table>
  <thead><tr><th>Title</th><th>Body</th><th>Created</th></tr></thead>
  <tbody>
  {% for post in object_list %}
    <tr><td>{{ post.title }}</td><td>{{ post.body|truncatewords:30 }}</td><td>{{ post.created|date:"Y-m-d H:i" }}</td></tr>
  {% endfor %}
  </tbody>
</table>
</body>
</html>
EOF
	sed -i 's/^from django.urls import path$/from django.urls import path\nfrom posts.views import PostList/; s/^\(urlpatterns = \[\)$/\1\n    path("posts\/", PostList.as_view()),/' "$app/mysite/urls.py"
	printf 'from mysite.wsgi import application  # noqa: F401\n' >"$app/passenger_wsgi.py"
	(cd "$app" && $PY manage.py makemigrations posts && $PY manage.py migrate &&
		$PY manage.py shell -c 'from posts.models import Post
for i in range(20): Post.objects.create(title=f"Post {i}", body=f"Body of post {i}. " * 10)') >>"$tmp/django-new.log" 2>&1 ||
		{ tail -20 "$tmp/django-new.log" >&2; die "django migrate/seed failed"; }
	DJANGO_APP=$app
	DJANGO_PATH=/posts/
}

# app_copy id src: a copy owned by nobody (Ferry and Passenger run an app
# owned by root as nobody; it writes its log and SQLite journal)
app_copy() {
	local dst=$tmp/app-$1
	rm -rf "$dst"
	cp -r "$2" "$dst"
	chown -R nobody:nogroup "$dst"
	echo "$dst"
}

# ------------------------------------------------------------ servers ----
PORT=18600
free_port() {
	while port_busy "$PORT"; do PORT=$((PORT + 1)); done
	echo "$PORT"
	PORT=$((PORT + 1))
}
# launch id dir cmd...: start cmd in dir in the background
launch() {
	local id=$1 dir=$2
	shift 2
	(cd "$dir" && exec "$@") </dev/null >"$tmp/$id.log" 2>&1 &
	MAIN_PID=$!
	track "$id" "$MAIN_PID"
}
start_server() { # id kind app port
	local id=$1 kind=$2 app=$3 port=$4
	case $kind in
	ferry)
		mkdir -p "$tmp/reg-$id"
		# shellcheck disable=SC2086 # FERRY_EXTRA: words
		launch "$id" "$app" "$tmp/ferry" start "$app" --port "$port" --address 127.0.0.1 -e production \
			--python "$PY" --access-log off --max-pool-size 2 --min-instances 2 \
			--log-file "$tmp/$id.ferry.log" --instance-registry-dir "$tmp/reg-$id" $FERRY_EXTRA
		;;
	passenger)
		mkdir -p "$tmp/reg-$id" "$tmp/ptmp-$id"
		launch "$id" "$app" env TMPDIR="$tmp/ptmp-$id" passenger start --port "$port" --address 127.0.0.1 \
			--engine builtin --max-pool-size 2 --min-instances 2 -e production --python "$PY" --ruby "$RUBY" \
			--disable-security-update-check --disable-anonymous-telemetry \
			--log-file "$tmp/$id.passenger.log" --instance-registry-dir "$tmp/reg-$id" --pid-file "$tmp/$id.ppid"
		;;
	puma) launch "$id" "$app" env RAILS_ENV=production puma -w 2 -b "tcp://127.0.0.1:$port" -e production config.ru ;;
	unicorn)
		printf 'worker_processes 2\n' >"$tmp/$id.unicorn.rb"
		launch "$id" "$app" env RAILS_ENV=production unicorn -c "$tmp/$id.unicorn.rb" -E production -l "127.0.0.1:$port" config.ru
		;;
	gunicorn) launch "$id" "$app" "$PY" -m gunicorn -w 2 -b "127.0.0.1:$port" passenger_wsgi:application ;;
	uwsgi)
		launch "$id" "$app" uwsgi --plugin python3 --http-socket "127.0.0.1:$port" --master --processes 2 \
			--wsgi-file passenger_wsgi.py --disable-logging --die-on-term --need-app
		;;
	esac
}
# server_pids id main_pid: the server's and its apps' processes. Passenger's
# watchdog daemonizes (its parent is init): its pid is in the --pid-file.
server_pids() {
	local w
	echo "$2"
	descendants "$2"
	w=$(cat "$tmp/$1.ppid" 2>/dev/null || true)
	if [[ $w =~ ^[0-9]+$ ]] && [[ $w != "$2" ]]; then
		echo "$w"
		descendants "$w"
	fi
	return 0
}
# listeners_ok pids...: every TCP listener of these processes is on 127.0.0.1
listeners_ok() {
	local p bad=0
	for p in "$@"; do
		ss -ltnpH 2>/dev/null | grep -F "pid=$p," | awk '{print $4}' | grep -qv '^127\.0\.0\.1:' && bad=1
	done
	((bad == 0))
}
ticks_of() { # pid... -> utime+stime summed (clock ticks)
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
to_ms() { # wrk duration (12.3us, 4.5ms, 1.2s) -> ms
	awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /m$/) n*=60000; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}
minflt_of() { # pid... -> minor page faults summed (copy-on-write shows here)
	local p s t=0
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		t=$((t + ${8}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)
declare -A ROW=()

measure() { # id kind label app path
	local id=$1 kind=$2 label=$3 app=$4 path=$5 port pids c t f before after flt0 flt1 reqs rps p50 p99 errs cpu la
	local key="$id#$ROUND"
	selected "$id" || return 0
	if ((ROUNDS > 1)); then label+=" (round $ROUND)"; fi
	port=$(free_port)
	log "$id: starting $label on 127.0.0.1:$port"
	start_server "$id" "$kind" "$app" "$port"
	local deadline=$((SECONDS + READY_TIMEOUT)) code=
	while ((SECONDS < deadline)); do
		code=$(http_code "$port" "$path")
		[[ $code == 200 ]] && break
		kill -0 "$MAIN_PID" 2>/dev/null || break
		sleep 0.5
	done
	if [[ $code != 200 ]]; then
		log "$id: no 200 on $path (last: $code); log tail:"
		tail -n 20 "$tmp/$id.log" "$tmp/$id".*.log 2>/dev/null >&2 || true
		ROW[$key]="| $label | failed to start | | | | | | | |"
		stop_server "$id" "$MAIN_PID"
		return 0
	fi
	# Ferry/Passenger spawn up to 2; wait for both before measuring
	wrk -t2 -c4 -d"$WARMUP" "http://127.0.0.1:$port$path" >/dev/null 2>&1 || true
	sleep 1
	pids=$(server_pids "$id" "$MAIN_PID" | tr '\n' ' ')
	# shellcheck disable=SC2086
	track "$id" $pids
	# shellcheck disable=SC2086
	if ! listeners_ok $pids; then
		log "$id: listens beyond 127.0.0.1; not measured"
		ROW[$key]="| $label | refused: listens beyond loopback | | | | | | | |"
		stop_server "$id" "$MAIN_PID"
		return 0
	fi
	ROW[$key]="| $label"
	for c in "$LOW" "$HIGH"; do
		t=2
		((c < t)) && t=$c
		f=$tmp/$id.c$c.txt
		pids=$(server_pids "$id" "$MAIN_PID" | tr '\n' ' ')
		la=$(loadavg)
		# shellcheck disable=SC2086
		before=$(ticks_of $pids)
		# shellcheck disable=SC2086
		flt0=$(minflt_of $pids)
		timeout $(($(dur_s "$DURATION") + 30)) wrk -t"$t" -c"$c" -d"$DURATION" --latency "http://127.0.0.1:$port$path" >"$f" 2>&1 || true
		pids=$(server_pids "$id" "$MAIN_PID" | tr '\n' ' ')
		# shellcheck disable=SC2086
		after=$(ticks_of $pids)
		# shellcheck disable=SC2086
		flt1=$(minflt_of $pids)
		reqs=$(awk '/ requests in /{print $1}' "$f")
		rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$f")
		p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
		p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
		# errors: non-2xx, connect, write, timeout; "read" errors are
		# connections the server closed after a response (unicorn has no
		# keep-alive), counted apart: those requests succeeded
		errs=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(/,/,""); n+=$4+$8+$10; r+=$6} END{printf "%d%s", n, (r ? " (+" r " closed)" : "")}' "$f")
		cpu=$(awk -v a="$before" -v b="$after" -v r="${reqs:-0}" -v hz="$HZ" 'BEGIN{ if (r > 0) printf "%.0f", (b-a)/hz/r*1e6; else print "?" }')
		ROW[$key]+=" | ${rps:-?} | $p50 / $p99 | $cpu"
		{
			echo "- $id${ROUNDS:+ round $ROUND} -c$c (load $la): $(grep -E 'Requests/sec|requests in|Non-2xx|Socket errors' "$f" | tr -s ' ' | paste -sd';'), CPU $((after - before)) ticks of server+apps ($cpu µs/request), minor page faults $((flt1 - flt0)) ($(awk -v f=$((flt1 - flt0)) -v r="${reqs:-0}" 'BEGIN{ if (r > 0) printf "%.1f", f/r; else print "?" }')/request)"
		} >>"$tmp/details.md"
		ROW[$key]+=" | $la"
	done
	ROW[$key]+=" | ${errs:-0} |"
	stop_server "$id" "$MAIN_PID"
}

table() { # title ids...
	local title=$1 id
	shift
	emit ""
	emit "### $title"
	emit ""
	emit "| server | req/s c$LOW | p50 / p99 ms c$LOW | CPU µs/req c$LOW | load c$LOW | req/s c$HIGH | p50 / p99 ms c$HIGH | CPU µs/req c$HIGH | load c$HIGH | errors (last run) |"
	emit "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |"
	local r key
	for ((r = 1; r <= ROUNDS; r++)); do
		for id in "$@"; do
			key="$id#$r"
			[[ -n ${ROW[$key]:-} ]] && emit "${ROW[$key]}"
		done
	done
	return 0
}

emit "## bench/realapp.sh, $(date -u '+%F %H:%M') UTC"
emit ""
emit "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work: load average at the start $(loadavg). Ferry $(ferry_build_line)."
emit ""
emit "Command: \`DURATION=$DURATION WARMUP=$WARMUP LOW=$LOW HIGH=$HIGH APPS=\"$APPS\"${ONLY:+ ONLY=\"$ONLY\"}${FERRY_EXTRA:+ FERRY_EXTRA=\"$FERRY_EXTRA\"} ROUNDS=$ROUNDS bench/realapp.sh\`; each column is one \`wrk -t2 -cN -d$DURATION --latency\` run (-t1 at -c1), one row per server and round. CPU µs/req: utime+stime of the server's and its apps' processes over the run divided by wrk's request count (less sensitive to other load than req/s). 2 app processes per server."

if [[ " $APPS " == *" rails "* ]]; then
	gen_rails
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		measure rails-ferry ferry "Ferry" "$(app_copy rails-ferry "$RAILS_APP")" "$RAILS_PATH"
		measure rails-passenger passenger "Passenger 6 (builtin engine)" "$(app_copy rails-passenger "$RAILS_APP")" "$RAILS_PATH"
		measure rails-puma puma "puma -w 2 (0:5 threads)" "$(app_copy rails-puma "$RAILS_APP")" "$RAILS_PATH"
		measure rails-unicorn unicorn "unicorn, 2 workers" "$(app_copy rails-unicorn "$RAILS_APP")" "$RAILS_PATH"
	done
	table "Rails $(rails -v | awk '{print $2}') scaffold index (GET $RAILS_PATH, 20 rows, SQLite, production)" \
		rails-ferry rails-passenger rails-puma rails-unicorn
fi
if [[ " $APPS " == *" django "* ]]; then
	gen_django
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
		measure django-ferry ferry "Ferry" "$(app_copy django-ferry "$DJANGO_APP")" "$DJANGO_PATH"
		measure django-passenger passenger "Passenger 6 (builtin engine)" "$(app_copy django-passenger "$DJANGO_APP")" "$DJANGO_PATH"
		measure django-gunicorn gunicorn "gunicorn -w 2 (sync)" "$(app_copy django-gunicorn "$DJANGO_APP")" "$DJANGO_PATH"
		measure django-uwsgi uwsgi "uWSGI --processes 2 --http-socket" "$(app_copy django-uwsgi "$DJANGO_APP")" "$DJANGO_PATH"
	done
	table "Django $($PY -c 'import django; print(django.get_version())') ListView + template (GET $DJANGO_PATH, 20 rows, SQLite, DEBUG off)" \
		django-ferry django-passenger django-gunicorn django-uwsgi
fi
emit ""
emit "#### Details"
emit ""
cat "$tmp/details.md" 2>/dev/null | tee -a "$report"
mkdir -p "$RESULTS_DIR"
{
	echo
	cat "$report"
} >>"$out"
log "appended to $out"
ok=1
