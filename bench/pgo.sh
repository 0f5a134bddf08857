#!/usr/bin/env bash
# Builds the `dist` binaries (target/dist) with profile-guided
# optimisation. An instrumented build (target/pgo) serves a short mixed
# load through the tutorial's Example 2 (small responses on kept-alive and
# on new connections, 100 KiB responses, 1 MiB uploads) from two nginx
# backends; the profile every binary writes at exit then guides the final
# build. Without an llvm-profdata matching rustc's LLVM (Debian's
# llvm-N, installed if missing), it says so and builds without PGO.
#
# usage: bench/pgo.sh          (bench/lib.sh's build_dist runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=llvm-profdata-$llvm
need=()
command -v "$profdata" >/dev/null || need+=("llvm-$llvm")
for b in nginx wrk curl; do command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || need+=("$b"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || true
fi
if ! command -v "$profdata" >/dev/null; then
  echo "pgo.sh: $profdata not found (Debian package llvm-$llvm); building dist without PGO" >&2
  exec cargo build --profile dist "${DIST_PACKAGES[@]}"
fi

PROFILES=$PWD/target/pgo/profiles
rm -rf "$PROFILES"
CARGO_TARGET_DIR=target/pgo RUSTFLAGS="-Cprofile-generate=$PROFILES" \
  cargo build --profile dist "${DIST_PACKAGES[@]}"

W=$(mktemp -d -t modproxy-pgo.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

mkdir -p "$W/www"
head -c 102400 /dev/urandom > "$W/www/100k.bin"
head -c 1048576 /dev/zero > "$W/1m.bin"
# nginx's workers (not root) serve the files: mktemp's directory is private.
chmod -R a+rX "$W"
backends_config "$W" 18080 18081
nginx -c "$W/backends.conf" -p "$W" & PIDS+=($!)

dist_root "$W/root" "$PWD/target/pgo/dist"
example2_config "$W/root" 19000 1 18080 18081
target/pgo/dist/modproxy -d "$W/root" run & OURS=$!
PIDS+=("$OURS")
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:19000/ && break; sleep 0.1; done

echo 'wrk.headers["Connection"] = "close"' > "$W/close.lua"
cat > "$W/upload.lua" <<LUA
local f = io.open("$W/1m.bin", "rb"); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
LUA
url=http://127.0.0.1:19000
wrk -t1 -c64 -d3s "$url/" >/dev/null
wrk -t1 -c64 -d3s -s "$W/close.lua" "$url/" >/dev/null
wrk -t1 -c64 -d2s "$url/100k.bin" >/dev/null
wrk -t1 -c16 -d2s -s "$W/upload.lua" "$url/upload" >/dev/null

# The profiles are written when the processes exit.
kill -TERM "$OURS"; wait "$OURS" || true
ls "$PROFILES"/*.profraw >/dev/null
"$profdata" merge -o "$PROFILES/merged.profdata" "$PROFILES"/*.profraw
# Named by content: cargo sees new flags, so it rebuilds with the new profile.
use=$PWD/target/pgo/$(sha256sum "$PROFILES/merged.profdata" | cut -c1-16).profdata
rm -f "$PWD"/target/pgo/*.profdata
mv "$PROFILES/merged.profdata" "$use"
RUSTFLAGS="-Cprofile-use=$use" cargo build --profile dist "${DIST_PACKAGES[@]}"
