#!/usr/bin/env bash
# The Debian package, end to end: builds dist/ferry_VERSION_amd64.deb
# (packaging/build-deb.sh), has lintian check it (no errors allowed),
# installs it with dpkg -i, checks what it installed (version and commit,
# the ferry user, the conffile, the units' systemd-analyze exposure), serves
# an example app with the installed ferry over the packaged configuration's
# Unix socket, and purges the package. CI has no systemd running, so Ferry
# runs as the unit would run it: as root, with only the unit's capability
# bounding set and no new privileges (setpriv). Called by scripts/test.sh;
# needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "deb.sh: needs root (dpkg -i); skipped" >&2
	exit 0
fi
missing=()
for pkg in lintian adduser curl python3; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "== installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

fail() {
	echo "deb.sh: $*" >&2
	exit 1
}

echo "== build the .deb"
deb=$(packaging/build-deb.sh)
echo "$deb"

echo "== lintian"
lintian --fail-on error "$deb" || fail "lintian reports errors"

echo "== dpkg -i"
tmp=$(mktemp -d /tmp/ferry-deb.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	dpkg --purge ferry >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null

commit=$(git rev-parse HEAD 2>/dev/null | cut -c1-12)
/usr/bin/ferry version | tee "$tmp/version"
grep -q "(commit ${commit:-unknown}," "$tmp/version" || fail "ferry version does not name commit $commit"
getent passwd ferry >/dev/null || fail "no ferry user"
dpkg-query -W -f='${Conffiles}\n' ferry | grep -q "/etc/ferry/ferry.toml" || fail "/etc/ferry/ferry.toml is not a conffile"
if command -v systemd-analyze >/dev/null; then
	# Unknown or misspelt settings are only warned about by systemd: fail.
	for unit in ferry.service ferry-activated.service ferry.socket; do
		out=$(systemd-analyze verify "/lib/systemd/system/$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
		# Other packages' units are loaded too (unicorn's warns about its
		# Environment=): only what is said about Ferry's own files counts.
		ours=$(grep -E '(^|/)ferry[^/ :]*\.(service|socket)' <<<"$out" || true)
		[ -z "$ours" ] || fail "systemd-analyze verify $unit: $ours"
	done
fi
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
	for unit in ferry.service ferry-activated.service; do
		line=$(systemd-analyze security --offline=yes "/lib/systemd/system/$unit" 2>&1 | tail -1)
		echo "$line"
		level=$(sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")
		awk -v l="$level" 'BEGIN { exit !(l != "" && l <= 3.0) }' || fail "$unit: exposure ${level:-unknown}, want 3.0 or less"
	done
fi

if command -v logrotate >/dev/null; then
	logrotate -d /etc/logrotate.d/ferry 2>&1 | grep -qi "error" && fail "logrotate does not accept /etc/logrotate.d/ferry"
fi
# Installing it again (an upgrade) keeps an edited conffile.
echo "# edited" >>/etc/ferry/ferry.toml
dpkg -i "$deb" >/dev/null
grep -q "^# edited" /etc/ferry/ferry.toml || fail "reinstalling lost the edit of /etc/ferry/ferry.toml"

echo "== serve an example app with the installed ferry"
chmod 0755 "$tmp"
cp -r examples/hello-wsgi "$tmp/hello"
chmod -R a+rX "$tmp/hello" # its user (ferry: root owns the files) reads it
sock=$tmp/ferry.sock
# The packaged configuration, with the socket here (/run/ferry is systemd's)
# and the app its comments show.
sed "s|^socket_file = .*|socket_file = \"$sock\"|" /etc/ferry/ferry.toml >"$tmp/ferry.toml"
printf '\n[[app]]\nroot = "%s"\nserver_names = ["hello.example"]\n' "$tmp/hello" >>"$tmp/ferry.toml"
/usr/bin/ferry nginx-config --config "$tmp/ferry.toml" | grep -q "server unix:$sock;" || fail "ferry nginx-config does not use the configured socket"

caps=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/ferry.service | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
setpriv --bounding-set "-all,$caps" --no-new-privs \
	/usr/bin/ferry start --config "$tmp/ferry.toml" --instance-registry-dir "$tmp/run" --log-file "$tmp/ferry.log" &
pid=$!
for _ in $(seq 600); do
	[ -S "$sock" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/ferry.log" >&2; fail "ferry exited"; }
	sleep 0.1
done
body=$(curl -sS --max-time 60 --unix-socket "$sock" -H "Host: hello.example" http://localhost/) || { cat "$tmp/ferry.log" >&2; fail "no answer on $sock"; }
[ "$body" = "Hello from Ferry!" ] || { cat "$tmp/ferry.log" >&2; fail "the app answered $body"; }
echo "GET / over $sock: $body"
[ "$(stat -c %G "$sock")" = www-data ] || fail "the socket's group is $(stat -c %G "$sock"), not www-data"
users=$(ps -o user= --ppid "$pid" | sort -u | tr '\n' ' ')
[ "$users" = "ferry " ] || fail "the app's processes run as '$users', not ferry"
echo "socket group www-data; app processes run as: $users"
kill -TERM "$pid"
wait "$pid" || fail "ferry exited with $? on SIGTERM"
pid=

echo "== dpkg --purge"
dpkg --purge ferry >/dev/null
[ ! -e /usr/bin/ferry ] || fail "/usr/bin/ferry is still there"
echo "deb.sh: ok"
