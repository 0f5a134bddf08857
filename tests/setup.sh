#!/usr/bin/env bash
# Installs what the end-to-end tests need beyond the Rust toolchain, on a
# fresh Debian machine; quick and quiet when it is all there already.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tutorial's own backends are Flask apps; one test runs them as written.
python3 -c 'import flask' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check flask
# proxy_ftp's tests serve files with pyftpdlib (tests/src/ftp.rs).
python3 -c 'import pyftpdlib' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyftpdlib
# proxy_http2's tests: an HTTP/2 backend on the h2 library (GOAWAY and
# REFUSED_STREAM on demand) and a real gRPC server and client (grpcio).
python3 -c 'import h2' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check h2
python3 -c 'import grpc' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check grpcio

# wrk drives the load tests; curl checks TLS listeners; Debian's chromium,
# driven by playwright-core from npm, tests the balancer-manager page
# (never a browser that playwright downloads). Apache httpd itself is the
# reference the path tests compare with (tests/tests/proxy_paths_apache.rs):
# apache2-bin is Debian's apache2 binary and modules without the service,
# so installing it starts no server on port 80.
missing=()
for tool in wrk curl chromium npm; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/sbin/apache2 ] || missing+=(apache2-bin)
# PHP-FPM is the FastCGI server proxy_fcgi is tested against (and Apache's
# mod_proxy_fcgi, which apache2-bin ships, beside it); the tests start
# their own pools on loopback and never the system service.
compgen -G '/usr/sbin/php-fpm*' >/dev/null || missing+=(php-fpm)
# proxy_ajp's tests run Debian's Tomcat 10 (tomcat10-common: catalina's
# jars without the service, so nothing starts on 8080) and compile their
# servlet with javac (tests/src/tomcat.rs).
[ -f /usr/share/tomcat10/bin/bootstrap.jar ] || missing+=(tomcat10-common)
command -v javac >/dev/null || missing+=(default-jdk-headless)
# HTTP/2: proxy_http2's tests run Debian's nghttpd (h2c and TLS backends);
# h2load (nghttp2-client) drives the HTTP/2 client tests and both HTTP/2
# benchmarks, which compare with HAProxy; curl speaks HTTP/2 itself.
command -v nghttpd >/dev/null || missing+=(nghttp2-server)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v haproxy >/dev/null || missing+=(haproxy)
# proxy_discovery: its etcd client (etcd-client, over tonic) compiles
# etcd's .proto files at build time with protoc; its tests run a real etcd
# (etcd-server, with etcd-client's etcdctl to put and delete keys) and a
# real DNS server (dnsmasq-base: the binary without the service), both
# started by the tests on loopback ports (tests/src/discovery.rs).
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
[ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
if [ ${#missing[@]} -gt 0 ]; then
    packages=("${missing[@]/npm/nodejs npm}")
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${packages[*]} >/dev/null
    # etcd-server has no package without its service: on a machine with
    # systemd, stop the one its install started (the tests run their own).
    if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
fi
[ -d tests/browser/node_modules/playwright-core ] ||
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
