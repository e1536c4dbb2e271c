#!/usr/bin/env bash
# Builds the Debian package: dist/ferry_VERSION_amd64.deb, with dpkg-deb
# (no other tool). VERSION is cmd/ferry's version ('-' becomes '~', so that
# 0.1.0-dev sorts before 0.1.0), or $VERSION; the binary is stamped with it
# and the commit (ferry version prints both).
#
#   packaging/build-deb.sh            # → dist/ferry_0.1.0~dev_amd64.deb
#   VERSION=0.2.0 packaging/build-deb.sh
#
# Contents: /usr/bin/ferry (static, CGO_ENABLED=0), the hardened systemd
# units, /etc/ferry/ferry.toml (a conffile), logrotate for /var/log/ferry,
# the maintainer scripts (the ferry system user), copyright and changelog.
set -euo pipefail
cd "$(dirname "$0")/.."

upstream=${VERSION:-$(sed -n 's/^var version = "\(.*\)"$/\1/p' cmd/ferry/run.go)}
[ -n "$upstream" ] || { echo "build-deb.sh: no version in cmd/ferry/run.go" >&2; exit 1; }
debversion=${upstream//-/\~}
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Reproducible: every date in the package is the commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
arch=amd64
maintainer=${MAINTAINER:-"Ferry developers <ferry-server@users.noreply.github.com>"}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/ferry" \
	"$root/etc/logrotate.d" "$root/usr/share/doc/ferry"

# PIE: address space randomisation (static-pie, no libc).
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false -buildmode=pie \
	-ldflags "-s -w -X main.version=$upstream -X main.commit=$commit" -o "$root/usr/bin/ferry" ./cmd/ferry

for unit in ferry.service ferry-activated.service ferry.socket; do
	sed 's|/usr/local/bin/ferry|/usr/bin/ferry|g' "packaging/systemd/$unit" >"$root/lib/systemd/system/$unit"
done
install -m 0644 packaging/debian/ferry.toml "$root/etc/ferry/ferry.toml"
install -m 0644 packaging/debian/logrotate "$root/etc/logrotate.d/ferry"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/ferry/copyright"
gzip -9n <README.md >"$root/usr/share/doc/ferry/README.md.gz"
# A native package: the changelog is changelog.gz, in Debian's format.
{
	echo "ferry ($debversion) unstable; urgency=medium"
	echo
	echo "  * Built from commit $commit."
	echo
	echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$root/usr/share/doc/ferry/changelog.gz"
# The manual page: `ferry help` and `ferry start --help`, as they are.
install -d "$root/usr/share/man/man1"
roff() { sed 's/\\/\\e/g; s/^\([.'"'"']\)/\\\&\1/'; }
{
	echo ".TH FERRY 1 $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d) \"ferry $upstream\" \"User Commands\""
	echo ".SH NAME"
	echo "ferry \\- application server and process manager for web apps"
	echo ".SH DESCRIPTION"
	echo ".nf"
	"$root/usr/bin/ferry" help | roff
	echo ".fi"
	echo ".SH OPTIONS OF FERRY START"
	echo ".nf"
	"$root/usr/bin/ferry" start --help 2>&1 | roff
	echo ".fi"
	echo ".SH FILES"
	echo "/etc/ferry/ferry.toml, /lib/systemd/system/ferry.service, /usr/share/doc/ferry/README.md.gz"
} | gzip -9n >"$root/usr/share/man/man1/ferry.1.gz"
for s in postinst prerm postrm; do
	install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
printf '/etc/ferry/ferry.toml\n/etc/logrotate.d/ferry\n' >"$root/DEBIAN/conffiles"

(cd "$root" && find usr lib etc -type f ! -path 'etc/*' -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: ferry
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser
Recommends: python3
Suggests: nginx | apache2, ruby-rack, nodejs
Section: httpd
Priority: optional
Description: application server and process manager for web apps
 Ferry serves Rack (Ruby), WSGI and ASGI (Python) and Node.js apps, and any
 program that listens on \$PORT, as Phusion Passenger does: it starts and
 restarts their processes, balances requests over them, serves their
 static files, and stands alone or behind nginx or Apache (over a Unix
 socket: ferry nginx-config --install, ferry apache-config --install).
EOF

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p dist
out="dist/ferry_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
