#!/usr/bin/env bash
# `npm run package`: builds btrfly_VERSION_ARCH.deb in the project root (or $BTRFLY_DEB_OUT).
# The .deb carries its own Node runtime (node_modules/node-linux-<cpu>, the optional dependency
# npm ci installed), the npm package as `npm pack` makes it (dist/, bundled JS dependencies),
# /usr/bin/btrfly, and a systemd unit for `btrfly serve` that is not enabled by default.
#   BTRFLY_TGZ=FILE         use this `npm pack` tarball instead of packing (tests reuse one)
#   BTRFLY_DEB_COMPRESS=xz  dpkg-deb's compressor (xz, gzip, zstd, none)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(node -p 'require("./package.json").version')
case $(uname -m) in
  x86_64) cpu=x64 arch=amd64 ;;
  aarch64) cpu=arm64 arch=arm64 ;;
  *) echo "package-deb: no Node runtime package for $(uname -m)" >&2; exit 1 ;;
esac
runtime=node_modules/node-linux-$cpu
[ -x "$runtime/bin/node" ] || { echo "package-deb: $runtime/bin/node is missing: run npm ci first" >&2; exit 1; }
out=${BTRFLY_DEB_OUT:-$root}
work=$(mktemp -d "${TMPDIR:-/tmp}/btrfly-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT

tgz=${BTRFLY_TGZ:-}
if [ -z "$tgz" ]; then
  npm pack --silent --pack-destination "$work" >/dev/null
  tgz=$work/btrfly-$version.tgz
fi

stage=$work/stage
app=$stage/usr/lib/btrfly
mkdir -p "$app" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/share/doc/btrfly" "$stage/DEBIAN"
tar -xzf "$tgz" -C "$app" --strip-components=1
# The runtime: only the binary and what names it (no headers, no 700 KB changelog).
mkdir -p "$app/node_modules/node-linux-$cpu/bin"
cp "$runtime/package.json" "$runtime/LICENSE" "$app/node_modules/node-linux-$cpu/"
cp "$runtime/bin/node" "$app/node_modules/node-linux-$cpu/bin/node"
strip --strip-unneeded "$app/node_modules/node-linux-$cpu/bin/node" 2>/dev/null || true
ln -s ../lib/btrfly/bin/btrfly "$stage/usr/bin/btrfly"
mv "$app/README.md" "$stage/usr/share/doc/btrfly/"
# The default settings of the service; postinst copies them to /etc/btrfly/serve.json when that
# file is absent, and prerm removes that copy on `dpkg -r` if nobody changed it.
cat >"$app/serve.default.json" <<'JSON'
{
  "address": "127.0.0.1",
  "archive": "/var/lib/btrfly/archive",
  "tokens": "/var/lib/btrfly/tokens.json"
}
JSON

cat >"$stage/lib/systemd/system/btrfly.service" <<'UNIT'
[Unit]
Description=btrfly service: DNS, recording proxy, API and web UI for build hosts
Documentation=file:/usr/share/doc/btrfly/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=btrfly
Group=btrfly
ExecStart=/usr/bin/btrfly serve --config /etc/btrfly/serve.json
# The CA key and certificate live in the config directory (0600), beside the archive.
Environment=BTRFLY_CONFIG_DIR=/var/lib/btrfly/config HOME=/var/lib/btrfly
StateDirectory=btrfly
StateDirectoryMode=0750
WorkingDirectory=/var/lib/btrfly
# Ports 53, 80 and 443 and nothing else of root's.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
# AF_NETLINK: the service lists the host's addresses (getifaddrs) to refuse recording from itself
# when it listens on every address; without it, it cannot start there.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
Restart=on-failure
# SIGTERM seals every open recording before the process exits.
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT

installed=$(du -sk --apparent-size "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: btrfly
Version: $version
Architecture: $arch
Maintainer: btrfly developers <btrfly@localhost>
Installed-Size: $installed
Depends: git, adduser
Recommends: ca-certificates, curl
Section: net
Priority: optional
Homepage: file:/usr/share/doc/btrfly/README.md
Description: HTTP time machine for reproducible builds
 btrfly records every HTTP(S) response a build receives into a git archive
 and plays the same bytes back offline. This package carries its own Node
 runtime, /usr/bin/btrfly and a systemd unit for "btrfly serve" (not enabled).
CONTROL

cat >"$stage/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd btrfly >/dev/null; then
    adduser --system --group --quiet --home /var/lib/btrfly --no-create-home \
      --shell /usr/sbin/nologin --gecos 'btrfly service' btrfly
  fi
  install -d -o btrfly -g btrfly -m 0750 /var/lib/btrfly
  install -d -m 0755 /etc/btrfly
  [ -e /etc/btrfly/serve.json ] || cp /usr/lib/btrfly/serve.default.json /etc/btrfly/serve.json
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
SH

cat >"$stage/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = remove ]; then
  if [ -d /run/systemd/system ]; then systemctl stop btrfly.service || true; fi
  # Settings nobody changed go with the package; changed ones stay until purge.
  if cmp -s /usr/lib/btrfly/serve.default.json /etc/btrfly/serve.json; then rm -f /etc/btrfly/serve.json; fi
fi
SH

cat >"$stage/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
case "$1" in
  remove)
    rmdir /etc/btrfly 2>/dev/null || true
    # An empty state directory (nothing recorded) and its user go now; state stays until purge.
    rmdir /var/lib/btrfly 2>/dev/null || true
    if [ ! -e /var/lib/btrfly ]; then
      if getent passwd btrfly >/dev/null; then deluser --system --quiet btrfly || true; fi
      if getent group btrfly >/dev/null; then delgroup --system --quiet btrfly || true; fi
    fi
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
    ;;
  purge)
    rm -rf /var/lib/btrfly /etc/btrfly
    if getent passwd btrfly >/dev/null; then deluser --system --quiet btrfly || true; fi
    if getent group btrfly >/dev/null; then delgroup --system --quiet btrfly || true; fi
    ;;
esac
SH
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

deb=$out/btrfly_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${BTRFLY_DEB_COMPRESS:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
