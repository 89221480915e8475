#!/usr/bin/env bash
# ngx_tunnel demo: an edge (Debian's nginx + the module) on loopback, a
# sample local service, and the `tunnel` client exposing it.  Prints the
# public URL and a request fetched through it, then stops what it started.
#
#   make demo                 (builds first)
#   DEMO_KEEP=1 make demo     leaves everything running; it says how to stop
#
# Ports: 4443 registration (TLS), 8080 http tunnels, 8443 https/tls tunnels,
# 8081 status, 8444-8445 internal hops, 8000 the sample service,
# 30000-30099 tcp tunnels.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/demo
module=$top/build/ngx_tunnel_module.so
client=$top/build/tunnel
pids=()

say() { printf '\033[1m%s\033[0m\n' "$*"; }

stop() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -f "$dir/nginx.pid" ]; then
        kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    fi
}

for port in 4443 8080 8081 8443 8444 8445 8000; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        echo "demo: port $port on 127.0.0.1 is in use; stop what uses it" \
             "(a demo left running? kill \$(cat $dir/nginx.pid))" >&2
        exit 1
    fi
done

rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"

say "1. Certificates: a demo CA, the edge's, and *.tun.localhost's"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=ngx_tunnel demo CA" \
    -keyout ca.key -out ca.crt 2>/dev/null
for name in edge wildcard; do
    if [ $name = edge ]; then
        san="DNS:localhost,IP:127.0.0.1"; cn=localhost
    else
        san="DNS:*.tun.localhost"; cn="*.tun.localhost"
    fi
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
        -keyout $name.key -out $name.csr 2>/dev/null
    openssl x509 -req -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days 30 -extfile <(printf 'subjectAltName=%s\n' "$san") \
        -out $name.crt 2>/dev/null
done

token=$(openssl rand -hex 20)
echo "$token id=demo" > tunnel.tokens
chmod 600 tunnel.tokens

say "2. The edge: nginx with the tunnel module (examples/nginx.conf)"
sed -e "s|/usr/lib/nginx/modules/ngx_tunnel_module.so|$module|" \
    -e "s|^worker_processes auto;|worker_processes 2;|" \
    "$top/examples/nginx.conf" > nginx.conf
if [ "$(id -u)" = 0 ]; then
    # workers run as nobody: let them reach the files here
    sed -i "s|^worker_processes|user www-data;\nworker_processes|" nginx.conf
    chown -R www-data "$dir"
fi
nginx -p "$dir" -c nginx.conf -e "$dir/error.log"
trap stop EXIT

say "3. A local service on 127.0.0.1:8000"
perl "$top/examples/hello-service.pl" 8000 &
pids+=($!)

say "4. The client: tunnel http 8000"
echo "   $ tunnel http 8000 --server 127.0.0.1:4443 --ca ca.crt --token ... --name demo"
"$client" http 8000 --server 127.0.0.1:4443 --ca "$dir/ca.crt" \
    --token "$token" --name demo --log-format text > client.log 2>&1 &
pids+=($!)

url=
for _ in $(seq 50); do
    url=$(grep -o 'http://demo\.tun\.localhost:8080' client.log | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done

if [ -z "$url" ]; then
    echo "demo: the client did not get a public URL; its output:" >&2
    cat client.log >&2
    echo "and the edge's error log:" >&2
    tail -20 error.log >&2
    exit 1
fi

echo
sed 's/^/   /' client.log
echo
say "5. A request through the tunnel"
echo "   $ curl $url/"
curl -sS --resolve demo.tun.localhost:8080:127.0.0.1 "$url/" | sed 's/^/   /'
echo

if [ -n "${DEMO_KEEP:-}" ]; then
    trap - EXIT
    say "Running. Public URL: $url  (status: http://127.0.0.1:8081/tunnels)"
    echo "Stop with: kill ${pids[*]}; kill -QUIT \$(cat $dir/nginx.pid)"
    exit 0
fi

say "Done: the demo stops what it started (DEMO_KEEP=1 keeps it running)."
