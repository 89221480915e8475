#!/usr/bin/env bash
# Builds nginx 1.22.1 (the version Debian 12 ships) from its source with
# AddressSanitizer and UndefinedBehaviorSanitizer, the tunnel module linked
# in, for "make test-asan".  Usage: build-nginx.sh REPO OUTDIR
#
# The source is Debian's copy of the nginx.org release tarball, checked
# against its SHA-256; it is downloaded once and kept in OUTDIR.

set -euo pipefail

self=$(realpath "$0")
repo=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
version=1.22.1
sha256=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
url=http://deb.debian.org/debian/pool/main/n/nginx/nginx_$version.orig.tar.gz
tarball=$out/nginx_$version.orig.tar.gz
src=$out/nginx-$version

mkdir -p "$out"

if [ ! -f "$tarball" ]; then
    echo "asan: downloading $url"
    curl -sSf -o "$tarball.part" "$url"
    mv "$tarball.part" "$tarball"
fi

if ! echo "$sha256  $tarball" | sha256sum -c --quiet -; then
    echo "asan: $tarball is not nginx $version (SHA-256 differs)" >&2
    rm -f "$tarball"
    exit 1
fi

if [ ! -d "$src" ]; then
    tar -xzf "$tarball" -C "$out"
fi

# nginx 1.22.1 itself passes NULL with length 0 to memcpy (ngx_pstrdup at
# start): harmless, and not ours to fix, so that one check is off.
san="-fsanitize=address,undefined -fno-sanitize=nonnull-attribute"
san="$san -fno-sanitize-recover=undefined"

cd "$src"

# configure again when the flags here or the set of module files change
stamp=$( (cat "$self"; ls "$repo"/config "$repo"/ngx_tunnel_module/* \
            "$repo"/core/*) | md5sum)
if [ "$(cat objs/.tunnel-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "asan: configure (log: $src/objs/configure.log)"
    mkdir -p objs
    if ! ./configure --with-cc=clang \
            --with-cc-opt="-O1 -g -fno-omit-frame-pointer $san -Wno-error" \
            --with-ld-opt="$san" \
            --with-debug --with-threads --with-compat \
            --with-http_ssl_module --with-http_v2_module \
            --with-http_realip_module --with-http_auth_request_module \
            --with-http_stub_status_module \
            --with-stream --with-stream_ssl_module \
            --with-stream_ssl_preread_module --with-stream_realip_module \
            --with-pcre --add-module="$repo" \
            > objs/configure.log.tmp 2>&1
    then
        cat objs/configure.log.tmp >&2
        exit 1
    fi
    mv objs/configure.log.tmp objs/configure.log
    echo "$stamp" > objs/.tunnel-stamp
fi

make -j"$(nproc)" > objs/make.log 2>&1 || { tail -40 objs/make.log >&2; exit 1; }
cp objs/nginx "$out/nginx"
echo "asan: $out/nginx"
