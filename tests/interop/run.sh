#!/bin/bash
#
# Interop of our yamux core with hashicorp/yamux (Debian's package, Go in
# GOPATH mode).  Builds build/interop/peer (tests/interop/peer.go) and
# build/interop/driver (tests/interop/driver.c on core/yamux.c, with ASan
# and UBSan when clang is there), then runs every scenario twice: our
# session as client against a Go server, and as server against a Go client.
# Loopback only, ephemeral ports.  Prints what passed; exits 1 on any
# failure.
#
#     bash tests/interop/run.sh [scenario ...]

set -u

cd "$(dirname "$0")/../.." || exit 1

OUT=build/interop
SCENARIOS=(echo-ours echo-theirs halfclose-ours halfclose-theirs reset
           ping goaway-theirs goaway-ours window)
[ $# -gt 0 ] && SCENARIOS=("$@")
RUN_TIMEOUT=${RUN_TIMEOUT:-60}

mkdir -p "$OUT"

YAMUX_SRC=/usr/share/gocode/src/github.com/hashicorp/yamux
if [ ! -d "$YAMUX_SRC" ] || ! command -v go > /dev/null; then
    echo "interop: needs golang-go and golang-github-hashicorp-yamux-dev" \
         "(make deps)" >&2
    exit 1
fi

echo "interop: building the Go peer (hashicorp/yamux from $YAMUX_SRC)"
if ! GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= \
     GOCACHE="$PWD/$OUT/gocache" \
     go build -o "$OUT/peer" tests/interop/peer.go; then
    echo "interop: FAIL: the Go peer does not build" >&2
    exit 1
fi

CFLAGS_DRIVER="-O1 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -Icore"
if command -v "${CLANG:-clang}" > /dev/null; then
    CC_DRIVER="${CLANG:-clang}"
    CFLAGS_DRIVER="$CFLAGS_DRIVER -fsanitize=address,undefined"
    CFLAGS_DRIVER="$CFLAGS_DRIVER -fno-sanitize-recover=all"
    CFLAGS_DRIVER="$CFLAGS_DRIVER -fno-omit-frame-pointer"
else
    CC_DRIVER="${CC:-cc}"
fi

echo "interop: building the driver ($CC_DRIVER, core/yamux.c)"
# shellcheck disable=SC2086
if ! "$CC_DRIVER" $CFLAGS_DRIVER -o "$OUT/driver" tests/interop/driver.c \
     core/yamux.c; then
    echo "interop: FAIL: the driver does not build" >&2
    exit 1
fi

PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2> /dev/null
    done
}
trap cleanup EXIT INT TERM


# run_one ROLE SCENARIO: ROLE is our session's role
run_one() {
    local ours=$1 name=$2 dir port i lpid cpid lrc crc
    local -a listener connector

    dir=$(mktemp -d "$PWD/$OUT/run.XXXXXX")

    if [ "$ours" = server ]; then
        listener=("$OUT/driver" -role server)
        connector=("$OUT/peer" -role client)
    else
        listener=("$OUT/peer" -role server)
        connector=("$OUT/driver" -role client)
    fi

    timeout "$RUN_TIMEOUT" "${listener[@]}" -scenario "$name" -sync "$dir" \
        > "$dir/listener.out" 2> "$dir/listener.err" &
    lpid=$!
    PIDS+=("$lpid")

    port=
    for i in $(seq 1 500); do
        port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$dir/listener.out")
        [ -n "$port" ] && break
        kill -0 "$lpid" 2> /dev/null || break
        sleep 0.02
    done

    if [ -z "$port" ]; then
        echo "FAIL ours=$ours $name: no port from the listener"
        cat "$dir/listener.err"
        kill "$lpid" 2> /dev/null
        wait "$lpid" 2> /dev/null
        return 1
    fi

    timeout "$RUN_TIMEOUT" "${connector[@]}" -scenario "$name" \
        -sync "$dir" -port "$port" \
        > "$dir/connector.out" 2> "$dir/connector.err" &
    cpid=$!
    PIDS+=("$cpid")

    wait "$cpid"
    crc=$?
    wait "$lpid"
    lrc=$?

    if [ $lrc -eq 0 ] && [ $crc -eq 0 ]; then
        echo "PASS ours=$ours $name"
        grep -h ': ok: ' "$dir/listener.out" "$dir/connector.out" \
            | sed 's/^/    /'
        rm -rf "$dir"
        return 0
    fi

    echo "FAIL ours=$ours $name (listener rc $lrc, connector rc $crc;" \
         "logs in $dir)"
    cat "$dir/listener.out" "$dir/connector.out" | grep -v '^port ' \
        | sed 's/^/    /'
    grep -h -v 'yamux: \(Discarding data\|frame for missing\)' \
        "$dir/listener.err" "$dir/connector.err" | tail -20 | sed 's/^/    /'
    return 1
}


pass=0
fail=0
start=$(date +%s)

for ours in client server; do
    for name in "${SCENARIOS[@]}"; do
        if run_one "$ours" "$name"; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
        fi
    done
done

echo "interop: $pass passed, $fail failed ($(( $(date +%s) - start )) s)"
[ $fail -eq 0 ]
