#!/usr/bin/env bash
# tests/bench/run.sh — `make bench`: ngx_tunnel side by side with its peers,
# on loopback, in one run.  Prints one markdown table (and a table of the
# targets of issue 6) and writes it to build/bench/results-<date>.md.
#
# Paths (one set of functions path_<name>_{start,stop,srv,cli} each, plus
# path_<name>_rtt_{start,stop} for the 50 ms RTT workload; add a path by
# writing one more set and naming it in PATHS):
#   direct    the load generator talks to the local service itself
#   nginx     Debian's nginx, 1 worker: stream proxy_pass (TCP) and http
#             proxy_pass with keepalive 64 (HTTP) to the service
#   ssh       sshd on a loopback port (own config, host and user keys) and
#             ssh -N -R, cipher aes128-gcm@openssh.com
#   yamux     yamux-go/ relay (hashicorp/yamux, 256 KiB default window)
#   yamux6m   the same with a 6 MiB window (as frp)
#   ours1     nginx + build/ngx_tunnel_module.so, 1 worker, plain link,
#             build/tunnel clients (tcp tunnels and one http tunnel)
#   ours2     the same, 2 workers
#   ours1tls  1 worker, TLS link (listen ... ssl, client --cacert)
#   ours2tls  (not in the default list) 2 workers, TLS link
# Local services: iperf3 -s, an nginx answering "hello\n", and during the
# idle test idleconns.py's sink.  Every tunnel forwards public ports
# base+1/+2/+3/+4 to iperf3 / http / sink / http (base+4: a tcp tunnel or
# stream proxy to the http service where the path has a distinct one).
#
# Workloads (WORKLOADS), each run path after path, paths alternating:
#   mem   RSS of the fresh processes; IDLE_N idle connections held through
#         each path (bytes per stream); for ngx_tunnel, SESSIONS idle
#         registrations on a fresh nginx, plain and TLS (bytes per session);
#         then every path is restarted, so that what follows sees fresh
#         processes too
#   tcp   iperf3 1 connection ↑/↓, 8 connections ↑/↓, T s each
#   http  wrk -t2 -c64 keep-alive and "Connection: close", through the HTTP
#         path and (nginx, ngx_tunnel) through the TCP path
#   rtt   iperf3 1 connection ↑/↓ with delay.c (25 ms each way) on the
#         tunnel's link, and on iperf3 itself for "no tunnel"
#   reg   registration time, REG_N in a row (regload.c), plain and TLS
#   reconnect  nginx restarted RECONNECT_N times, each under a fresh client
# tcp, http and rtt repeat ROUNDS times (path order reversed every other
# round); the table gives the median over the rounds.
#
# Env: T (5) ROUNDS (1) PATHS WORKLOADS IDLE_N (10000) SESSIONS (1000)
#      REG_N (100) RECONNECT_N (100) BENCH_PORT (12000: ports BENCH_PORT..
#      +1000 on 127.0.0.1) RESULTS (the .md file) KEEP=1 (keep the work dir)
#      REF (ours1: the column the ratios are taken against)
#      PERF=1 (profile ngx_tunnel's processes during its figures: perf)
#      OURS_WINDOW (e.g. 32m: tunnel_window and the client's --window)
# Needs the packages of .ci/deps (make deps); ssh runs only as root.
# Starts everything it measures and stops exactly those PIDs on exit.

set -u
export LC_ALL=C

TOP=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$TOP/tests/bench
OUT=$TOP/build/bench
T=${T:-5}
ROUNDS=${ROUNDS:-1}
PATHS=${PATHS:-"direct nginx ssh yamux yamux6m ours1 ours2 ours1tls"}
WORKLOADS=${WORKLOADS:-"mem tcp http rtt reg reconnect"}
IDLE_N=${IDLE_N:-10000}
SESSIONS=${SESSIONS:-1000}
REG_N=${REG_N:-100}
RECONNECT_N=${RECONNECT_N:-100}
BASE=${BENCH_PORT:-12000}
REF=${REF:-ours1}
STAMP=$(date +%Y-%m-%dT%H%M)
RESULTS=${RESULTS:-$OUT/results-$STAMP.md}
PY=/usr/bin/python3; [ -x $PY ] || PY=python3
TOKEN=benchtoken-0123456789abcdef
DOMAIN=tun.bench
HZ=$(getconf CLK_TCK)
unset TUNNEL_SERVER TUNNEL_TOKEN TUNNEL_CA TUNNEL_LOG_LEVEL TUNNEL_LOG_FORMAT TUNNEL_CONFIG

SVC_IPERF=$((BASE + 1)) SVC_HTTP=$((BASE + 2)) SVC_SINK=$((BASE + 3))

mkdir -p "$OUT"
W=$(mktemp -d "$OUT/run.XXXXXX")
TSV=$W/results.tsv
log() { echo "[$(date +%T)] $*" >&2; }
put() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TSV"; }   # path key value
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
[ "$NOFILE" -ge $((IDLE_N + 500)) ] || {
    IDLE_N=$((NOFILE - 500))
    log "ulimit -n is $(ulimit -n): IDLE_N lowered to $IDLE_N"; }


# ---------- processes: only PIDs started here are ever signalled ----------

STARTED=()
spawn() { # name cmd... : in the background, PID in $LASTPID
    local name=$1; shift
    "$@" >"$W/$name.out" 2>&1 &
    LASTPID=$!
    STARTED+=("$LASTPID")
}
ours_pid() { [ -d /proc/$1 ] && [ "$(awk '{print $4}' /proc/$1/stat 2>/dev/null)" = "$$" ]; }
alive() { ours_pid "$1" && [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" != Z ]; }
stop_pid() { # pid : TERM, up to 5 s, then KILL; only a child of this script
    local p=$1 i
    [ -n "$p" ] && ours_pid "$p" || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 250); do alive "$p" || break; sleep 0.02; done
    alive "$p" && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}
cleanup() {
    local i
    for ((i=${#STARTED[@]}-1; i>=0; i--)); do stop_pid "${STARTED[$i]}"; done
    [ "${KEEP:-0}" = 1 ] && log "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_port() { # port [tenths of a second, 100]
    local end=$(( $(now_ms) + ${2:-100} * 100 ))
    while [ "$(now_ms)" -lt $end ]; do listening "$1" && return 0; sleep 0.1; done
    log "port $1 not listening"; return 1
}
wait_http() { # port host : until the tunnel answers 200 (bounded, 10 s)
    local i
    for i in $(seq 100); do
        [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' -H "Host: $2" \
             "http://127.0.0.1:$1/")" = 200 ] && return 0
        sleep 0.1
    done
    log "no 200 from 127.0.0.1:$1 for $2"; return 1
}
children() { local p; for p in "$@"; do pgrep -P "$p"; done; }
rss_kib() { local s=0 p r; for p in "$@"; do
    r=$(awk '/^VmRSS:/{print $2}' /proc/$p/status 2>/dev/null); s=$((s + ${r:-0})); done; echo $s; }
cpu_ticks() { local s=0 p t; for p in "$@"; do
    t=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}'); s=$((s + ${t:-0})); done; echo $s; }


# ---------- builds, keys, local services ----------

build() {
    log "building tools"
    local cc="cc -O2 -g -Wall -Wextra -std=c11 -D_GNU_SOURCE"
    $cc -pthread -o "$OUT/delay" "$HERE/delay.c" &&
    $cc -I"$TOP/core" -o "$OUT/regload" "$HERE/regload.c" \
        "$TOP/core/yamux.c" "$TOP/core/tunnel_msg.c" -lssl -lcrypto &&
    (cd "$HERE/yamux-go" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE="$OUT/gocache" go build -o "$OUT/yamux-relay" .) || return 1
    # Copies: a rebuild during the run rewrites build/ngx_tunnel_module.so
    # in place, and an nginx that has it mapped would crash.
    BUILD_INFO="commit $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)$(git -C "$TOP" \
        diff --quiet HEAD -- core client ngx_tunnel_module 2>/dev/null || echo ' + uncommitted changes')"
    [ -z "$(ours_in)" ] && return 0
    mkdir -p "$W/bin" && cp "$TOP/build/tunnel" "$TOP/build/ngx_tunnel_module.so" "$W/bin/" || {
        log "build/tunnel or build/ngx_tunnel_module.so missing (make)"; return 1; }
}

keys() { # a CA and a P-256 certificate for 127.0.0.1, as the TLS link uses
    local d=$W/pki; mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -days 2 -subj "/CN=bench CA" -keyout "$d/ca.key" -out "$d/ca.crt" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$d/edge.key" -out "$d/edge.csr" &&
    openssl x509 -req -in "$d/edge.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 2 -out "$d/edge.crt" \
        -extfile <(echo "subjectAltName=IP:127.0.0.1")
} >/dev/null 2>&1

nginx_common() { # dir : http{} settings every nginx here shares
    echo "access_log off; keepalive_requests 100000000; keepalive_timeout 75s;"
    local t; for t in client_body proxy fastcgi uwsgi scgi; do echo "${t}_temp_path $1/$t;"; done
}
nginx_head() { # dir workers
    echo "worker_processes $2; daemon off; worker_rlimit_nofile $NOFILE;"
    echo "pid $1/nginx.pid; error_log $1/error.log warn;"
    echo "events { worker_connections $NOFILE; }"
}

svc_start() {
    spawn iperf3 iperf3 -s -B 127.0.0.1 -p $SVC_IPERF
    mkdir -p "$W/svc"
    cat >"$W/svc/nginx.conf" <<EOF
$(nginx_head "$W/svc" 1)
http { $(nginx_common "$W/svc")
  server { listen 127.0.0.1:$SVC_HTTP backlog=4096;
           location / { default_type text/plain; return 200 "hello\n"; } } }
EOF
    spawn svc-nginx nginx -p "$W/svc" -e "$W/svc/error.log" -c "$W/svc/nginx.conf"
    wait_port $SVC_IPERF && wait_port $SVC_HTTP
}


# ---------- paths ----------
# For each path: LABEL, and the public ports of its forwards (– if none):
# IPERF (-> iperf3), HTTP (-> http service, HTTP path), HOST (Host header
# for HTTP), TCPHTTP (-> http service over the TCP path), SINK (-> sink).
# path_X_srv / path_X_cli ROLE print the PIDs that count as its server and
# client (ROLE: iperf, http, tcphttp, sink: ours has one client per tunnel).

declare -A LABEL IPERF HTTP HOST TCPHTTP SINK RTT PID_A PID_B PID_C
NPATH=0
pbase() { echo $((BASE + 100 * $1)); }          # path index -> its ports

define() { # name label : ports base+1.. for a tunnel path
    NPATH=$((NPATH + 1))
    local b; b=$(pbase $NPATH)
    LABEL[$1]=$2 IPERF[$1]=$((b + 1)) HTTP[$1]=$((b + 2)) SINK[$1]=$((b + 3))
    TCPHTTP[$1]=$((b + 2)) HOST[$1]="" RTT[$1]=$((b + 5)) PB[$1]=$b
}
declare -A PB

# direct
LABEL[direct]="direct" IPERF[direct]=$SVC_IPERF HTTP[direct]=$SVC_HTTP
TCPHTTP[direct]=$SVC_HTTP SINK[direct]=$SVC_SINK HOST[direct]="" RTT[direct]=$((BASE + 5))
path_direct_start() { :; }
path_direct_stop() { :; }
path_direct_srv() { :; }
path_direct_cli() { :; }
path_direct_rtt_start() { # the "no tunnel" reference: iperf3 through delay
    spawn direct-delay "$OUT/delay" "${RTT[direct]}" $SVC_IPERF -d 25
    PID_C[direct]=$LASTPID; wait_port "${RTT[direct]}"
}
path_direct_rtt_stop() { stop_pid "${PID_C[direct]}"; }

# nginx: stream proxy_pass (TCP) and http proxy_pass (HTTP), 1 worker
define nginx "nginx proxy"
TCPHTTP[nginx]=$((PB[nginx] + 4))
path_nginx_start() {
    local d=$W/nginx b=${PB[nginx]}; mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
$(nginx_head "$d" 1)
stream {
  server { listen 127.0.0.1:$((b + 1)) backlog=4096; proxy_pass 127.0.0.1:$SVC_IPERF; }
  server { listen 127.0.0.1:$((b + 3)) backlog=4096; proxy_pass 127.0.0.1:$SVC_SINK; }
  server { listen 127.0.0.1:$((b + 4)) backlog=4096; proxy_pass 127.0.0.1:$SVC_HTTP; }
}
http { $(nginx_common "$d")
  upstream svc { server 127.0.0.1:$SVC_HTTP; keepalive 64; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$((b + 2)) backlog=4096;
    location / { proxy_pass http://svc; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
    spawn nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    PID_A[nginx]=$LASTPID
    wait_port $((b + 1)) && wait_port $((b + 2))
}
path_nginx_stop() { stop_pid "${PID_A[nginx]}"; }
path_nginx_srv() { children "${PID_A[nginx]}"; }
path_nginx_cli() { :; }

# OpenSSH reverse forwarding
SSH_CIPHER=${SSH_CIPHER:-aes128-gcm@openssh.com}
define ssh "ssh -R"
ssh_opts() { # port
    echo "-F /dev/null -p $1 -i $W/ssh/id -o IdentitiesOnly=yes -o BatchMode=yes
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
      -o Ciphers=$SSH_CIPHER -o Compression=no -o ExitOnForwardFailure=yes"; }
path_ssh_start() {
    local d=$W/ssh b=${PB[ssh]}; mkdir -p "$d"
    [ "$(id -u)" = 0 ] || { log "ssh: needs root (sshd)"; return 1; }
    [ -f "$d/id" ] || { ssh-keygen -q -t ed25519 -N '' -f "$d/host" &&
                        ssh-keygen -q -t ed25519 -N '' -f "$d/id"; } || return 1
    cp "$d/id.pub" "$d/authorized_keys"
    cat >"$d/sshd_config" <<EOF
Port $((b + 10))
ListenAddress 127.0.0.1
HostKey $d/host
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 100
Ciphers $SSH_CIPHER
LogLevel ERROR
EOF
    mkdir -p /run/sshd
    spawn sshd /usr/sbin/sshd -D -e -f "$d/sshd_config"
    PID_A[ssh]=$LASTPID
    wait_port $((b + 10)) || return 1
    spawn ssh-client ssh $(ssh_opts $((b + 10))) -N \
        -R 127.0.0.1:$((b + 1)):127.0.0.1:$SVC_IPERF \
        -R 127.0.0.1:$((b + 2)):127.0.0.1:$SVC_HTTP \
        -R 127.0.0.1:$((b + 3)):127.0.0.1:$SVC_SINK root@127.0.0.1
    PID_B[ssh]=$LASTPID
    wait_port $((b + 1)) && wait_port $((b + 2)) && wait_port $((b + 3))
}
path_ssh_stop() { stop_pid "${PID_B[ssh]}"; stop_pid "${PID_A[ssh]}"; }
path_ssh_srv() { local m; m=$(children "${PID_A[ssh]}"); [ -n "$m" ] && { echo "$m"; children $m; }; }
path_ssh_cli() { echo "${PID_B[ssh]}"; }
path_ssh_rtt_start() { # a second ssh client, its link through delay
    local b=${PB[ssh]}
    spawn ssh-delay "$OUT/delay" $((b + 11)) $((b + 10)) -d 25; PID_C[ssh]=$LASTPID
    wait_port $((b + 11)) || return 1
    spawn ssh-rtt ssh $(ssh_opts $((b + 11))) -N \
        -R 127.0.0.1:${RTT[ssh]}:127.0.0.1:$SVC_IPERF root@127.0.0.1
    PID_B[ssh-rtt]=$LASTPID
    wait_port "${RTT[ssh]}" 200
}
path_ssh_rtt_stop() { stop_pid "${PID_B[ssh-rtt]}"; stop_pid "${PID_C[ssh]}"; }

# hashicorp/yamux relay (yamux-go/), default and 6 MiB window
yamux_start() { # name window ctrl-port link-port(client dials) pubs -- locals
    local name=$1 win=$2 ctrl=$3 link=$4 pubs=() i; shift 4
    while [ "$1" != -- ]; do pubs+=("127.0.0.1:$1"); shift; done; shift
    spawn "$name-server" env YAMUX_WINDOW="$win" "$OUT/yamux-relay" server \
        "127.0.0.1:$ctrl" "${pubs[@]}"
    PID_A[$name]=$LASTPID
    wait_port "$ctrl" || return 1
    spawn "$name-client" env YAMUX_WINDOW="$win" "$OUT/yamux-relay" client \
        "127.0.0.1:$link" "${@/#/127.0.0.1:}"
    PID_B[$name]=$LASTPID
    for i in $(seq 100); do
        [ -n "$(ss -Htn state established "dport = :$ctrl")" ] && return 0; sleep 0.1
    done
    log "$name: client did not connect"; return 1
}
yamux_path() { # name window label
    define "$1" "$3"
    eval "path_$1_start() { local b=\${PB[$1]}; yamux_start $1 $2 \$((b + 10)) \$((b + 10)) \
            \$((b + 1)) \$((b + 2)) \$((b + 3)) -- $SVC_IPERF $SVC_HTTP $SVC_SINK; }
        path_$1_stop() { stop_pid \"\${PID_B[$1]}\"; stop_pid \"\${PID_A[$1]}\"; }
        path_$1_srv() { echo \"\${PID_A[$1]}\"; }
        path_$1_cli() { echo \"\${PID_B[$1]}\"; }
        path_$1_rtt_start() { local b=\${PB[$1]}
            spawn $1-delay \"$OUT/delay\" \$((b + 11)) \$((b + 12)) -d 25; PID_C[$1]=\$LASTPID
            wait_port \$((b + 11)) && yamux_start $1-rtt $2 \$((b + 12)) \$((b + 11)) \
                \${RTT[$1]} -- $SVC_IPERF; }
        path_$1_rtt_stop() { stop_pid \"\${PID_B[$1-rtt]}\"; stop_pid \"\${PID_A[$1-rtt]}\"; \
            stop_pid \"\${PID_C[$1]}\"; }"
}
yamux_path yamux 0 "yamux-go"
yamux_path yamux6m 6291456 "yamux-go 6 MiB"

# ngx_tunnel: our module and client
# ours_conf dir workers tls(0|1) base : an edge with registration on base+10,
# http tunnels on base+2, tcp tunnels on base+1..+9
ours_conf() {
    local d=$1 b=$4 ssl=""
    [ "$3" = 1 ] && ssl="ssl; ssl_certificate $W/pki/edge.crt; ssl_certificate_key $W/pki/edge.key"
    echo "$TOKEN id=bench" >"$d/tokens"; chmod 600 "$d/tokens"
    cat >"$d/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
load_module $W/bin/ngx_tunnel_module.so;
$(nginx_head "$d" "$2")
stream {
  tunnel_zone bench 16m;
  server {
    listen 127.0.0.1:$((b + 10)) $ssl;
    tunnel_server on; tunnel_tokens $d/tokens; tunnel_domain $DOMAIN;
    tunnel_tcp_ports $((b + 1))-$((b + 9)); tunnel_tcp_address 127.0.0.1;
    tunnel_max_streams 30000;${OURS_WINDOW:+ tunnel_window $OURS_WINDOW;}
  }
}
http { $(nginx_common "$d")
  upstream tunnels { tunnel_route \$host keepalive=64; }
  server { listen 127.0.0.1:$((b + 2)) backlog=4096;
    location / { proxy_pass http://tunnels; proxy_http_version 1.1;
                 proxy_set_header Connection ""; } } }
EOF
}
ours_client() { # name server-port tls kind target [args] : one tunnel process
    local name=$1 port=$2 tls=$3; shift 3
    local link=(--plain); [ "$tls" = 1 ] && link=(--cacert "$W/pki/ca.crt")
    spawn "$name" env HOME="$W" "$W/bin/tunnel" "$1" "127.0.0.1:$2" --server "127.0.0.1:$port" \
        --token "$TOKEN" "${link[@]}" --log-format json ${OURS_WINDOW:+--window $OURS_WINDOW} "${@:3}"
}
ours_start() { # name workers tls
    local n=$1 d=$W/$1 b=${PB[$1]}; mkdir -p "$d"
    ours_conf "$d" "$2" "$3" "$b"
    spawn "$n" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"; PID_A[$n]=$LASTPID
    wait_port $((b + 10)) || return 1
    ours_client "$n-c-iperf" $((b + 10)) "$3" tcp $SVC_IPERF --remote-port $((b + 1))
    PID_B[$n,iperf]=$LASTPID
    ours_client "$n-c-http" $((b + 10)) "$3" http $SVC_HTTP --name bench
    PID_B[$n,http]=$LASTPID
    ours_client "$n-c-sink" $((b + 10)) "$3" tcp $SVC_SINK --remote-port $((b + 3))
    PID_B[$n,sink]=$LASTPID
    ours_client "$n-c-tcphttp" $((b + 10)) "$3" tcp $SVC_HTTP --remote-port $((b + 4))
    PID_B[$n,tcphttp]=$LASTPID
    wait_port $((b + 1)) && wait_port $((b + 3)) && wait_port $((b + 4)) &&
        wait_http $((b + 2)) "bench.$DOMAIN"
}
ours_stop() { # name
    local r
    for r in iperf http sink tcphttp rtt; do stop_pid "${PID_B[$1,$r]:-}"; done
    stop_pid "${PID_A[$1]}"
}
ours_path() { # name workers tls label
    define "$1" "$4"
    HOST[$1]="bench.$DOMAIN" TCPHTTP[$1]=$((PB[$1] + 4))
    eval "path_$1_start() { ours_start $1 $2 $3; }
        path_$1_stop() { ours_stop $1; }
        path_$1_srv() { children \"\${PID_A[$1]}\"; }
        path_$1_cli() { echo \"\${PID_B[$1,\${1:-iperf}]}\"; }
        path_$1_rtt_start() { local b=\${PB[$1]}
            spawn $1-delay \"$OUT/delay\" \$((b + 11)) \$((b + 10)) -d 25; PID_C[$1]=\$LASTPID
            wait_port \$((b + 11)) || return 1
            ours_client $1-c-rtt \$((b + 11)) $3 tcp $SVC_IPERF --remote-port \${RTT[$1]}
            PID_B[$1,rtt]=\$LASTPID; wait_port \${RTT[$1]} 200; }
        path_$1_rtt_stop() { stop_pid \"\${PID_B[$1,rtt]}\"; stop_pid \"\${PID_C[$1]}\"; }"
}
ours_path ours1 1 0 "ngx_tunnel 1w"
ours_path ours2 2 0 "ngx_tunnel 2w"
ours_path ours1tls 1 1 "ngx_tunnel 1w TLS"
ours_path ours2tls 2 1 "ngx_tunnel 2w TLS"
# the RTT workload runs on these (those of PATHS that have an rtt variant)
RTT_PATHS=${RTT_PATHS:-"direct ours1 ssh yamux yamux6m"}


# ---------- workloads ----------

# PERF=1: perf record the ngx_tunnel processes during each of its figures;
# the hottest symbols go to build/bench/perf-<stamp>/<path>-<key>.txt.
perf_start() { # path key pids...
    PERFPID=
    [ "${PERF:-0}" = 1 ] && [[ $1 == ours* ]] || return 0
    local p=$1 k=$2; shift 2
    mkdir -p "$OUT/perf-$STAMP"
    spawn "perf-$p-$k" perf record -q -e cpu-clock -F 499 --call-graph dwarf,8192 \
        -p "$(echo $* | tr ' ' ,)" -o "$W/perf-$p-$k.data" -- sleep $((T > 2 ? T - 1 : 1))
    PERFPID=$LASTPID
}
perf_stop() { # path key
    [ -n "$PERFPID" ] || return 0
    local i; for i in $(seq 300); do alive "$PERFPID" || break; sleep 0.1; done
    stop_pid "$PERFPID"
    { perf report -i "$W/perf-$1-$2.data" --stdio --no-children --sort comm,dso,sym -g none
      perf report -i "$W/perf-$1-$2.data" --stdio --children --sort comm,sym -g none
    } 2>/dev/null | grep '%' | head -120 >"$OUT/perf-$STAMP/$1-$2.txt"
    rm -f "$W/perf-$1-$2.data"
}

iperf_run() { # path key parallel [-R]
    local p=$1 k=$2 port=${PORT:-${IPERF[$1]}} f=$W/iperf-$1-$2.json pids c0 c1 t0 t1 r
    [ "$port" = - ] && return
    pids="$(path_${p}_srv) $(path_${p}_cli iperf)"
    c0=$(cpu_ticks $pids); t0=$(date +%s.%N)
    perf_start "$p" "$k" $pids
    timeout $((T + 30)) iperf3 -c 127.0.0.1 -p "$port" --connect-timeout 5000 \
        -O "${OMIT:-1}" -t "$T" -P "$3" ${4:-} -J --get-server-output >"$f" 2>&1
    t1=$(date +%s.%N); c1=$(cpu_ticks $pids)
    perf_stop "$p" "$k"
    r=$($PY "$HERE/report.py" iperf "$f" ${UNIT:-})
    if [ "$r" = err ]; then     # iperf3 fails now and then ("busy"): once more
        log "iperf3 $p $k failed: $(grep -o '"error":.*' "$f" | head -1); again"
        sleep 2
        timeout $((T + 30)) iperf3 -c 127.0.0.1 -p "$port" --connect-timeout 5000 \
            -O "${OMIT:-1}" -t "$T" -P "$3" ${4:-} -J --get-server-output >"$f" 2>&1
        r=$($PY "$HERE/report.py" iperf "$f" ${UNIT:-})
    fi
    put "$p" "$k" "$r"
    [ -n "${pids// /}" ] && put "$p" "$k.cpu" "$(awk -v a="$c0" -v b="$c1" -v t0="$t0" \
        -v t1="$t1" -v hz="$HZ" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')"
    sleep 1
}

wrk_run() { # path key port host [wrk args...]
    local p=$1 k=$2 port=$3 host=$4 f=$W/wrk-$1-$2.txt r; shift 4
    local hdr=(); [ -n "$host" ] && hdr=(-H "Host: $host")
    local role=http; [ "$port" = "${TCPHTTP[$p]}" ] && [ "$port" != "${HTTP[$p]}" ] && role=tcphttp
    perf_start "$p" "$k" $(path_${p}_srv) $(path_${p}_cli $role)
    timeout $((T + 30)) wrk -t2 -c64 -d"${T}s" --latency "${hdr[@]}" "$@" \
        "http://127.0.0.1:$port/" >"$f" 2>&1
    perf_stop "$p" "$k"
    read -r rps p50 p99 err <<<"$($PY "$HERE/report.py" wrk "$f")"
    put "$p" "$k.rps" "$rps"; put "$p" "$k.p50" "$p50"; put "$p" "$k.p99" "$p99"
    put "$p" "$k.err" "$err"
    [ "$err" != 0 ] && log "wrk $p $k: $err errors (see $f)"
    sleep 1
}

http_run() { # path
    local p=$1
    wrk_run "$p" ka "${HTTP[$p]}" "${HOST[$p]}"
    wrk_run "$p" close "${HTTP[$p]}" "${HOST[$p]}" -H 'Connection: close'
    if [ "${TCPHTTP[$p]}" != "${HTTP[$p]}" ]; then
        wrk_run "$p" tka "${TCPHTTP[$p]}" ""
        wrk_run "$p" tclose "${TCPHTTP[$p]}" "" -H 'Connection: close'
    else    # the same path: measured once, shown in both rows
        local k; for k in rps p50 p99; do
            put "$p" "tka.$k" "$(awk -F'\t' -v p="$p" -v k="ka.$k" '$1==p && $2==k {v=$3} END {print v}' "$TSV")"
            put "$p" "tclose.$k" "$(awk -F'\t' -v p="$p" -v k="close.$k" '$1==p && $2==k {v=$3} END {print v}' "$TSV")"
        done
    fi
}

mem_snapshot() { # path key
    local p=$1 s c
    s=$(path_${p}_srv); c=$(path_${p}_cli sink)
    [ -n "$s" ] && put "$p" "$2.srv" "$(rss_kib $s)"
    [ -n "$c" ] && put "$p" "$2.cli" "$(rss_kib $c)"
}

idle_run() { # path : IDLE_N idle connections end to end through the path
    local p=$1 rdy=$W/idle-$1.json i sp ip s c s0 c0 ok
    s=$(path_${p}_srv); c=$(path_${p}_cli sink)
    s0=$(rss_kib $s); c0=$(rss_kib $c)
    # sink and connector apart: each needs IDLE_N descriptors
    spawn "sink-$p" "$PY" "$HERE/idleconns.py" --role sink --sink-port $SVC_SINK \
        --connect-port 0 -n 0 --hold 150 --ready "$W/sink-$p.json"
    sp=$LASTPID
    for i in $(seq 100); do [ -f "$W/sink-$p.json" ] && break; sleep 0.1; done
    spawn "idle-$p" "$PY" "$HERE/idleconns.py" --role connect --sink-port $SVC_SINK \
        --connect-port "${SINK[$p]}" -n "$IDLE_N" --concurrency 256 --hold 120 --ready "$rdy"
    ip=$LASTPID
    for i in $(seq 1200); do [ -f "$rdy" ] && break; alive $ip || break; sleep 0.1; done
    sleep 1
    ok=$($PY "$HERE/report.py" json "$rdy" ok)
    put "$p" idle.ok "$ok"
    if [ "$ok" -gt 0 ] 2>/dev/null; then
        [ -n "$s" ] && put "$p" idle.srv $(( ($(rss_kib $s) - s0) * 1024 / ok ))
        [ -n "$c" ] && put "$p" idle.cli $(( ($(rss_kib $c) - c0) * 1024 / ok ))
    fi
    [ "$ok" = "$IDLE_N" ] || log "idle $p: $ok of $IDLE_N up ($(cat "$rdy" 2>/dev/null))"
    stop_pid $ip; stop_pid $sp
    sleep 1
}

# ngx_tunnel sessions: a fresh 1-worker edge, SESSIONS registrations held
sessions_run() { # tls(0|1) key
    local d=$W/mem$1 b; b=$(pbase $((NPATH + 1))); mkdir -p "$d"
    ours_conf "$d" 1 "$1" "$b"
    spawn mem-nginx nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    local np=$LASTPID w r0 r1 rp ok tls=()
    wait_port $((b + 10)) || { stop_pid $np; return 1; }
    sleep 0.5
    w=$(children $np); r0=$(rss_kib $w)
    [ "$1" = 1 ] && tls=(--tls "$W/pki/ca.crt")
    spawn regload "$OUT/regload" hold -n "$SESSIONS" $((b + 10)) "$TOKEN" \
        "${tls[@]}" --ready "$W/hold$1.json" --hold 120
    rp=$LASTPID
    for i in $(seq 1200); do [ -f "$W/hold$1.json" ] && break; alive $rp || break; sleep 0.1; done
    sleep 1
    r1=$(rss_kib $w)
    ok=$($PY "$HERE/report.py" json "$W/hold$1.json" ok)
    [ "$ok" -gt 0 ] 2>/dev/null && put ours1 "$2" $(( (r1 - r0) * 1024 / ok ))
    [ "$ok" = "$SESSIONS" ] || log "sessions: $ok of $SESSIONS ($(cat "$W/hold$1.json" 2>/dev/null))"
    stop_pid $rp; stop_pid $np
}

reg_run() { # path key tls
    local b=${PB[$1]} tls=() f=$W/reg-$1.json
    [ "$3" = 1 ] && tls=(--tls "$W/pki/ca.crt")
    timeout 120 "$OUT/regload" time -n "$REG_N" $((b + 10)) "$TOKEN" "${tls[@]}" >"$f"
    read -r m p e <<<"$($PY "$HERE/report.py" json "$f" median_ms p99_ms ok)"
    put ours1 "$2.median" "$m"; put ours1 "$2.p99" "$p"
    [ "$e" = "$REG_N" ] || log "registration $1: $e of $REG_N ($(cat "$f"))"
}

reconnect_run() { # a fresh 1-worker edge, restarted N times under a fresh client
    local d=$W/rc b f=$W/reconnect.json; b=$(pbase $((NPATH + 2))); mkdir -p "$d"
    ours_conf "$d" 1 0 "$b"
    spawn reconnect env HOME="$W" "$PY" "$HERE/reconnect.py" -n "$RECONNECT_N" \
        --port $((b + 2)) --host "rc.$DOMAIN" \
        --client "$W/bin/tunnel http 127.0.0.1:$SVC_HTTP --server 127.0.0.1:$((b + 10)) \
                  --token $TOKEN --plain --log-format json --name rc" \
        -- nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf"
    local rp=$LASTPID
    for i in $(seq $((RECONNECT_N * 210))); do alive $rp || break; sleep 0.1; done
    stop_pid $rp
    cp "$W/reconnect.out" "$f"
    read -r m p l ok <<<"$($PY "$HERE/report.py" json "$f" reconnect_median_ms \
        reconnect_p99_ms listen_median_ms ok)"
    put ours1 reconnect.median "$m"; put ours1 reconnect.p99 "$p"; put ours1 listen.median "$l"
    [ "$ok" = "$RECONNECT_N" ] || log "reconnect: $ok of $RECONNECT_N ($(cat "$f"))"
}

rtt_paths() { local p; for p in $RTT_PATHS; do
    [[ " $PATHS " == *" $p "* ]] && declare -F "path_${p}_rtt_start" >/dev/null && echo "$p"; done; }
has() { [[ " $WORKLOADS " == *" $1 "* ]]; }
ours_in() { local p; for p in $PATHS; do [[ $p == ours* ]] && echo "$p"; done; }


# ---------- run ----------

for p in $PATHS; do
    declare -F "path_${p}_start" >/dev/null || { echo "unknown path $p" >&2; exit 2; }
done
busy=$(ss -Hltn | awk -v lo=$BASE -v hi=$((BASE + 100 * (NPATH + 3))) \
    '{ n = split($4, a, ":"); p = a[n] + 0; if (p > lo && p <= hi) print p }' | sort -un)
[ -z "$busy" ] || { echo "ports in use: $busy (the bench uses $BASE..+$((100 * (NPATH + 3))));" \
    "stop what holds them or set BENCH_PORT" >&2; exit 2; }
build && keys || { echo "bench: build or keys failed" >&2; exit 1; }
t_start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
svc_start || { echo "bench: local services did not start" >&2; exit 1; }
start_all() {
    local p
    for p in $PATHS; do
        log "start $p"
        "path_${p}_start" || { echo "bench: path $p did not start; see $W (KEEP=1 keeps it)" >&2; exit 1; }
    done
    sleep 2
}
stop_all() { local p; for p in $PATHS; do "path_${p}_stop"; done; }

start_all
if has mem; then
    for p in $PATHS; do mem_snapshot "$p" fresh; done
    for p in $PATHS; do [ "$p" != direct ] && { log "idle x$IDLE_N $p"; idle_run "$p"; }; done
    if [[ " $PATHS " == *" ours1 "* ]]; then
        log "sessions x$SESSIONS plain"; sessions_run 0 sess.srv
        log "sessions x$SESSIONS TLS"; sessions_run 1 sess.tls
    fi
    # Fresh processes again: what the idle test left in the heaps changes
    # later figures (ngx_tunnel's throughput depends on it, see README.md).
    log "restarting every path"
    stop_all; start_all
fi

for round in $(seq "$ROUNDS"); do
    order=$PATHS
    [ $((round % 2)) = 0 ] && order=$(echo $PATHS | tr ' ' '\n' | tac | tr '\n' ' ')
    if has tcp; then
        for spec in "up1 1" "down1 1 -R" "up8 8" "down8 8 -R"; do
            set -- $spec
            for p in $order; do log "[$round] iperf3 $1 $p"; iperf_run "$p" "$@"; done
        done
    fi
    if has http; then
        for p in $order; do log "[$round] wrk $p"; http_run "$p"; done
    fi
    if has rtt; then
        up=()
        for p in $(rtt_paths); do
            log "[$round] start $p (50 ms RTT)"
            "path_${p}_rtt_start" && up+=("$p") || log "$p: no 50 ms RTT variant; skipped"
        done
        sleep 1
        for spec in "rtt.up" "rtt.down -R"; do
            set -- $spec
            for p in "${up[@]}"; do
                log "[$round] iperf3 $1 $p"
                OMIT=2 UNIT=mbit PORT=${RTT[$p]} iperf_run "$p" "$1" 1 ${2:-}
            done
        done
        for p in $(rtt_paths); do "path_${p}_rtt_stop"; done
    fi
done

if has reg && [[ " $PATHS " == *" ours1 "* ]]; then
    log "registration x$REG_N plain"; reg_run ours1 reg 0
fi
if has reg && [[ " $PATHS " == *" ours1tls "* ]]; then
    log "registration x$REG_N TLS"; reg_run ours1tls regtls 1
fi
if has reconnect && [[ " $PATHS " == *" ours1 "* ]]; then
    log "reconnect x$RECONNECT_N"; reconnect_run
fi
elapsed=$(( $(date +%s) - t_start ))

{
    put meta paths "$PATHS"
    put meta ref "$REF"
    put meta rounds "$ROUNDS"
    put meta T "$T"
    put meta idle_n "$IDLE_N"
    put meta sessions "$SESSIONS"
    put meta reg_n "$REG_N"
    put meta reconnect_n "$RECONNECT_N"
    put meta rtt "delay.c on the tunnel's own link, 25 ms each way, in flight ≤ $(awk '{print $3}' /proc/sys/net/ipv4/tcp_rmem) bytes per RTT (tcp_rmem max)"
    for p in $PATHS; do put meta "label.$p" "${LABEL[$p]}"; done
}
cp "$TSV" "${RESULTS%.md}.tsv"
{
    echo "# ngx_tunnel benchmark, $(date -u +%FT%TZ)"
    echo
    echo "$(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)," \
         "$(. /etc/os-release; echo "$PRETTY_NAME"); $(nginx -v 2>&1 | sed 's/.*: //'), " \
         "$(ssh -V 2>&1 | cut -d, -f1), $(go version | cut -d' ' -f3), iperf3 $(iperf3 -v | head -1 | cut -d' ' -f2)," \
         "ngx_tunnel $BUILD_INFO."
    echo "T=${T}s, ROUNDS=$ROUNDS, ${elapsed}s measured; load average at start $load0, at end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Everything shares the same cores (load generators, services, relays): figures are CPU-bound."
    echo
    $PY "$HERE/report.py" table "$TSV"
} | tee "$RESULTS"
log "written: $RESULTS"
