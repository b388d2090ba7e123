#!/usr/bin/env bash
# The main job, end to end on this machine: a local HTTPS origin stands in for the internet;
# a "build" downloads from it under `btrfly run --record`; the origin is stopped; the same
# build runs under `btrfly run --playback` and gets the same bytes from the archive. Then the
# example archive shipped in the repository (.btrfly/) is verified and listed.
# Run it with `npm run demo` (which builds first and puts Node 24 on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/btrfly-demo-XXXXXX")
origin_pid=
cleanup() { [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export BTRFLY_CONFIG_DIR="$work/config"   # the demo's own CA; your real one is left alone
btrfly() { node bin/run.js "$@"; }

echo "== a local HTTPS origin for origin.test (its own self-signed certificate)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=origin.test \
  -addext subjectAltName=DNS:origin.test -keyout "$work/origin.key" -out "$work/origin.pem" 2>/dev/null
node test/fixtures/origin-server.js --host 127.0.0.1 --cert "$work/origin.pem" --key "$work/origin.key" >"$work/origin.json" &
origin_pid=$!
for _ in $(seq 100); do [ -s "$work/origin.json" ] && break; sleep 0.1; done
port=$(node -p "JSON.parse(require('fs').readFileSync('$work/origin.json','utf8')).port")
base="https://origin.test:$port"

cat >"$work/build.sh" <<BUILD
#!/usr/bin/env bash
# A build that downloads: a 12 MiB artifact, a small file, a gzip-encoded page.
set -eu
mkdir -p "\$1"
curl -sSf -o "\$1/artifact.bin" "$base/gen/12582912?seed=42"
curl -sSf -o "\$1/hello.txt" "$base/files/hello.txt"
curl -sSf --compressed -o "\$1/page.txt" "$base/gz/100000"
BUILD
chmod +x "$work/build.sh"

echo "== record: btrfly run --record --tag=demo -- build.sh"
btrfly run --record --tag=demo --archive "$work/archive" \
  --resolve "origin.test:127.0.0.1" --upstream-ca "$work/origin.pem" -- "$work/build.sh" "$work/recorded"

echo "== the origin goes away"
kill "$origin_pid"; wait "$origin_pid" 2>/dev/null || true; origin_pid=

echo "== playback: btrfly run --playback --tag=demo -- build.sh"
btrfly run --playback --tag=demo --archive "$work/archive" -- "$work/build.sh" "$work/played"
diff -r "$work/recorded" "$work/played"
echo "== playback gave the same bytes:"
(cd "$work/played" && sha256sum ./*)
btrfly show demo --archive "$work/archive"

if [ -d .btrfly ]; then
  echo "== the example archive in this repository (.btrfly/)"
  btrfly verify --archive .btrfly
  btrfly tags --archive .btrfly
fi
echo "== demo done"
