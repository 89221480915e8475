#!/usr/bin/env bash
# tests/soak/run.sh — `make soak`: SOAK_SECONDS (1800) of mixed traffic with
# reloads and client restarts through nginx + the module; see soak.pl for
# what runs and what is measured.  Other knobs: RELOAD_EVERY (20),
# KILL_EVERY (60), SAMPLE_EVERY (60), SOAK_KEEP=1 keeps the directory.
# Exits 0 only if no error beyond those injected and no alert.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
export TUNNEL_MODULE=${TUNNEL_MODULE-$root/build/ngx_tunnel_module.so}
export TUNNEL_CLIENT=${TUNNEL_CLIENT-$root/build/tunnel}
export SOAK_SECONDS=${SOAK_SECONDS:-1800}

command -v perl >/dev/null || { echo "soak: perl is missing" >&2; exit 1; }

# soak.pl stops what it started on INT and TERM: pass them on, and wait
perl "$root/tests/soak/soak.pl" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
wait $pid
