#!/usr/bin/env bash
# Builds modproxy and its modules, starts the two demo backends on 8080 and
# 8081, and runs modproxy in the foreground on its default configuration
# (the tutorial's Example 2) at http://127.0.0.1:8000/. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
python3 demo/backend.py 8080 'Hello world!' & b1=$!
python3 demo/backend.py 8081 'Howdy world!' & b2=$!
trap 'kill $b1 $b2 2>/dev/null || true' EXIT
echo "modproxy on http://127.0.0.1:8000/ — try: curl http://127.0.0.1:8000/ (twice)"
target/release/modproxy -d . run
