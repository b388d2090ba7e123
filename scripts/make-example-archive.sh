#!/usr/bin/env bash
# Records the example archive `.btrfly/` at the project root (docs/archive-format.md, "Versions"): the fixture
# that proves every later btrfly still plays back format version 1. It is committed into
# the project as plain files, so it must stay small and hold only what a fresh clone keeps:
# no hooks, no logs, no journals or locks, and nothing that needs an empty directory.
#
# The archive only grows: do not re-record it once committed. To add a tag, record it into
# a copy with `btrfly run --record --archive <copy>`, then tidy it with this script's
# `tidy` step (`scripts/make-example-archive.sh --tidy-only DIR`). The tag example/packages
# (pip, npm, apt and go from the test fixture origins) was added by
# `node scripts/record-example-packages.js`, which packs its objects into a pack of their own.
#
# Usage: scripts/make-example-archive.sh [--force] [DIR]   (default DIR: <project>/.btrfly)
#        scripts/make-example-archive.sh --tidy-only DIR
# Needs: a built btrfly (npm run build), node, curl, openssl, git.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FORCE=0
TIDY_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1; shift ;;
    --tidy-only) TIDY_ONLY=1; shift ;;
    -*) echo "make-example-archive: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
OUT=$(realpath -m "${1:-$ROOT/.btrfly}")
# Fixed ports, so that a re-run records the same URLs; playback never connects to them.
HTTPS_PORT=${EXAMPLE_HTTPS_PORT:-48443}
HTTP_PORT=${EXAMPLE_HTTP_PORT:-48080}
BTRFLY=(node "$ROOT/bin/run.js")

# Leaves only what git keeps and btrfly needs: one pack, loose refs (a fresh clone drops
# empty directories, and `refs/` must not be empty for git to see a repository).
tidy() {
  local dir=$1
  rm -rf "$dir/hooks" "$dir/logs" "$dir/btrfly" "$dir/description" "$dir/FETCH_HEAD" "$dir/ORIG_HEAD"
  git --git-dir "$dir" -c gc.packRefs=false -c repack.writeBitmaps=false -c gc.writeCommitGraph=false gc --quiet --prune=now
  # What gc adds for dumb-HTTP clients and for speed; btrfly needs none of it.
  rm -rf "$dir/logs" "$dir/info/refs" "$dir/info/exclude" "$dir/objects/info/packs" "$dir/objects/info/commit-graph" "$dir/objects/info/commit-graphs"
  if [ -f "$dir/packed-refs" ]; then
    echo "make-example-archive: $dir has packed-refs; refs must stay loose" >&2
    exit 1
  fi
  git --git-dir "$dir" fsck --strict --no-dangling --no-progress
  "${BTRFLY[@]}" verify --archive "$dir"
  find "$dir" -type d -empty -delete
}

if [ "$TIDY_ONLY" = 1 ]; then
  tidy "$OUT"
  exit 0
fi

if [ ! -f "$ROOT/dist/commands/run.js" ]; then (cd "$ROOT" && npm run build >/dev/null); fi
if [ -e "$OUT" ]; then
  if [ "$FORCE" != 1 ]; then
    echo "make-example-archive: $OUT exists; the example archive only grows (pass --force to record it anew)" >&2
    exit 1
  fi
  rm -rf "$OUT"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A throwaway CA for the origin, as a real origin has its own; btrfly trusts it upstream.
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj '/CN=btrfly example origin CA' \
  -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj '/CN=origin.test' 2>/dev/null
printf 'subjectAltName=DNS:origin.test,DNS:cdn.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out leaf.pem -extfile leaf.ext 2>/dev/null

start_origin() { # name, then origin-server.js arguments
  local name=$1
  shift
  node "$ROOT/test/fixtures/origin-server.js" --host 127.0.0.1 "$@" > "$name.out" 2> "$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    if grep -q '"ready":true' "$name.out" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "make-example-archive: origin $name did not start: $(cat "$name.err")" >&2
  exit 1
}
start_origin https --port "$HTTPS_PORT" --cert leaf.pem --key leaf.key
start_origin http --port "$HTTP_PORT"

S="https://origin.test:$HTTPS_PORT"
CDN="https://cdn.test:$HTTPS_PORT"
H="http://origin.test:$HTTP_PORT"

# The small build; its second recording ($1 = 2) drops one URL, adds one, and sees /counter change.
cat > build-small.sh <<EOF
set -eu
out=\$(mktemp -d)
curl -sSf -o "\$out/hello" "$S/files/hello.txt"
if [ "\$1" = 1 ]; then curl -sSf -o "\$out/data" "$S/files/data.bin"; fi
if [ "\$1" = 2 ]; then curl -sSf -o "\$out/extra" "$S/gen/2048?seed=2"; fi
curl -sSf -H 'Accept: application/json' -o "\$out/json" "$S/negotiate"
curl -sSf --compressed -o "\$out/gz" "$S/gz/40000"
curl -sSf -L -o "\$out/redirected" "$S/redirect?to=$CDN/files/hello.txt&status=302"
curl -sSf -o "\$out/c1" "$S/counter"
# Apart in time: a request that follows a finished one must not share its fetch (it did once).
sleep 1
curl -sSf -o "\$out/c2" "$S/counter"
curl -sSf -o "\$out/plain" "$H/gen/1000?seed=1"
curl -sS -o /dev/null "$S/status/404"
rm -rf "\$out"
EOF

cat > build-large.sh <<EOF
set -eu
# 16 MiB + 4 KiB of incompressible bytes: three parts, stored raw.
curl -sSf -o /dev/null "$S/gen/16781312?seed=42"
# 12 MB of text: two parts, stored zstd.
curl -sSf -o /dev/null "$S/gz/12000000"
EOF

export GIT_AUTHOR_NAME='btrfly example' GIT_AUTHOR_EMAIL='example@btrfly.invalid'
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"
record() { # tag, then the build's arguments
  local tag=$1
  shift
  "${BTRFLY[@]}" run --record --tag="$tag" --archive "$OUT" --upstream-ca ca.pem \
    --resolve origin.test:127.0.0.1 --resolve cdn.test:127.0.0.1 -- bash "$@"
}
record example/small build-small.sh 1
record example/large build-large.sh
record example/small build-small.sh 2

# HEAD names a tag that exists, so git tools have something to show.
git --git-dir "$OUT" symbolic-ref HEAD refs/heads/example/small
tidy "$OUT"
du -sh "$OUT"
