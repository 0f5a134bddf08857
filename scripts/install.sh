#!/usr/bin/env bash
# Builds modproxy as the benchmarks run it (the `dist` profile: fat LTO,
# one codegen unit) and lays out a server root under PREFIX:
#
#   PREFIX/bin/modproxy                  the server
#   PREFIX/modules/libmod_*.so           every shipped module
#   PREFIX/mods-available/*.toml         their descriptors (library = ../modules/…)
#   PREFIX/mods-enabled/                 proxy, proxy_http, proxy_balancer, lbmethod_byrequests
#   PREFIX/modproxy.toml                 the default config (the tutorial's Example 2)
#   PREFIX/sites-available/, sites-enabled/, logs/, run/
#   PREFIX/share/modproxy.service        docs/modproxy.service with PREFIX filled in
#
# An existing modproxy.toml, mods-enabled/ and sites-enabled/ are kept (an
# upgrade replaces the binary, the modules and their descriptors only).
# Then: PREFIX/bin/modproxy -d PREFIX start (or the systemd unit).
#
# usage: scripts/install.sh [--no-build] PREFIX
#   --no-build            install what target/PROFILE already holds
#   MODPROXY_PROFILE=…    another cargo profile (default dist; release is
#                         what the tests build). bench/pgo.sh builds dist
#                         with profile-guided optimisation too.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = --no-build ]; then build=0; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: scripts/install.sh [--no-build] PREFIX   (e.g. /opt/modproxy)" >&2
  exit 2
fi
prefix=$1
profile=${MODPROXY_PROFILE:-dist}
target=${CARGO_TARGET_DIR:-$PWD/target}/$profile

modules=()
for d in mods-available/*.toml; do modules+=("$(basename "$d" .toml)"); done
if [ $build = 1 ]; then
  # proxy_discovery's etcd client compiles etcd's .proto files with protoc.
  if [[ " ${modules[*]} " == *" proxy_discovery "* ]] && [ -z "${PROTOC:-}" ] && ! command -v protoc >/dev/null; then
    echo "install.sh: building proxy_discovery needs protoc: apt-get install protobuf-compiler (or set PROTOC to its path)" >&2
    exit 1
  fi
  packages=(-p modproxy)
  for m in "${modules[@]}"; do packages+=(-p "mod_$m"); done
  cargo build --profile "$profile" "${packages[@]}"
fi
for f in modproxy "${modules[@]/#/libmod_}"; do
  case $f in libmod_*) f=$f.so ;; esac
  if [ ! -f "$target/$f" ]; then
    echo "install.sh: $target/$f is missing: build it (scripts/install.sh without --no-build, or cargo build --profile $profile)" >&2
    exit 1
  fi
done

mkdir -p "$prefix"/{bin,modules,mods-available,sites-available,logs,run,share}
prefix=$(cd "$prefix" && pwd)
install -m 755 "$target/modproxy" "$prefix/bin/modproxy"
for m in "${modules[@]}"; do
  install -m 644 "$target/libmod_$m.so" "$prefix/modules/libmod_$m.so"
  sed "s|^library = .*|library = \"../modules/libmod_$m.so\"|" "mods-available/$m.toml" > "$prefix/mods-available/$m.toml"
done
if [ ! -d "$prefix/mods-enabled" ]; then
  mkdir "$prefix/mods-enabled"
  "$prefix/bin/modproxy" -d "$prefix" enmod -q proxy proxy_http proxy_balancer lbmethod_byrequests
fi
mkdir -p "$prefix/sites-enabled"
[ -f "$prefix/modproxy.toml" ] || install -m 644 modproxy.toml "$prefix/modproxy.toml"
sed "s|/opt/modproxy|$prefix|g" docs/modproxy.service > "$prefix/share/modproxy.service"

echo "modproxy installed in $prefix ($profile build). Next:"
echo "  $prefix/bin/modproxy -d $prefix configtest"
echo "  $prefix/bin/modproxy -d $prefix start      # or: systemctl link $prefix/share/modproxy.service"
