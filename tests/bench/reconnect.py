#!/usr/bin/env python3
"""Reconnect time after a server restart, N times: prints one JSON line.

usage: reconnect.py -n N --port P --host H -- NGINX_COMMAND...

NGINX_COMMAND runs an nginx in the foreground ("daemon off;") whose http
tunnel H is served on 127.0.0.1:P, with a `tunnel` client already attached
to it. Each round: stop that nginx (SIGTERM to the master, wait for it to
exit: the clients' sessions break), start it again, then fetch
http://H:P/ (connecting to 127.0.0.1) every 5 ms until the answer is 200,
i.e. until the client has reconnected and bound its name again. Times are
from the new master's start; "listen_ms" is when the port first accepted,
"reconnect_ms" when the tunnel answered. Every wait is bounded (10 s per
round); on SIGTERM the nginx it started is stopped and it exits.
The nginx is this script's child and the only process it signals.
"""
import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time

proc = None


def stop_nginx():
    global proc
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc = None


def on_term(signo, frame):
    stop_nginx()
    sys.exit(130)


def get_status(port, host):
    """HTTP status of GET / through the tunnel, or None if not reachable."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() +
                      b"\r\nConnection: close\r\n\r\n")
            line = s.recv(64).split(b"\r\n", 1)[0].split()
            return int(line[1]) if len(line) > 1 else 0
    except (OSError, ValueError):
        return None


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))]


def main(a):
    global proc
    signal.signal(signal.SIGTERM, on_term)
    listen, ready, fails = [], [], 0
    for i in range(a.n):
        stop_nginx()
        t0 = time.monotonic()
        proc = subprocess.Popen(a.cmd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        t_listen = None
        end = t0 + 10
        ok = False
        while time.monotonic() < end and proc.poll() is None:
            st = get_status(a.port, a.host)
            now = time.monotonic()
            if st is not None and t_listen is None:
                t_listen = now
            if st == 200:
                listen.append((t_listen - t0) * 1e3)
                ready.append((now - t0) * 1e3)
                ok = True
                break
            time.sleep(0.005)
        if not ok:
            fails += 1
            if proc.poll() is not None:
                break           # nginx does not start: no point going on
    stop_nginx()
    out = {"n": a.n, "ok": len(ready), "fail": fails}
    if ready:
        out.update(reconnect_median_ms=round(statistics.median(ready), 1),
                   reconnect_p99_ms=round(pct(ready, 99), 1),
                   listen_median_ms=round(statistics.median(listen), 1))
    print(json.dumps(out), flush=True)
    return 0 if len(ready) == a.n else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True)
    p.add_argument("cmd", nargs="+")
    sys.exit(main(p.parse_args()))
