#!/usr/bin/env python3
"""Reconnect time after a server restart, N times: prints one JSON line.

usage: reconnect.py -n N --port P --host H --client "CMD" -- NGINX_COMMAND...

NGINX_COMMAND runs an nginx in the foreground ("daemon off;") whose http
tunnel H is served on 127.0.0.1:P; CMD (split as a shell would) runs a
`tunnel` client that binds H there. Each round starts a fresh client (so
that every round sees a client whose session was stable, not one whose
reconnect backoff has grown over the rounds before), waits until
http://H:P/ answers 200, then restarts the server: SIGTERM to the master,
wait for it to exit (the session breaks), start it again, and fetch
http://H:P/ (connecting to 127.0.0.1) every 5 ms until the answer is 200,
i.e. until the client has reconnected and bound its name again. Times are
from the new master's start; "listen_ms" is when the port first accepted,
"reconnect_ms" when the tunnel answered. Every wait is bounded (10 s per
step); on SIGTERM it stops what it started and exits. The nginx and the
clients are this script's children and the only processes it signals.
"""
import argparse
import json
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

proc = None        # the nginx
client = None


def stop(p, again=False):
    """SIGTERM (twice with "again": the client then leaves at once instead
    of serving its open connections for a grace period), then SIGKILL."""
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(0.2 if again else 10)
        return
    except subprocess.TimeoutExpired:
        pass
    if again:
        p.terminate()
        try:
            p.wait(5)
            return
        except subprocess.TimeoutExpired:
            pass
    p.kill()
    p.wait()


def stop_nginx():
    global proc
    stop(proc)
    proc = None


def on_term(signo, frame):
    stop(client)
    stop_nginx()
    sys.exit(130)


def wait_200(port, host, until):
    """(ms when the port first answered, ms when it answered 200) or None."""
    t0, t_listen = time.monotonic(), None
    while time.monotonic() < until and proc.poll() is None:
        st = get_status(port, host)
        now = time.monotonic()
        if st is not None and t_listen is None:
            t_listen = now
        if st == 200:
            return (t_listen - t0) * 1e3, (now - t0) * 1e3
        time.sleep(0.005)
    return None


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
    global proc, client
    signal.signal(signal.SIGTERM, on_term)
    listen, ready, fails = [], [], 0
    proc = subprocess.Popen(a.cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for i in range(a.n):
        client = subprocess.Popen(shlex.split(a.client),
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        up = wait_200(a.port, a.host, time.monotonic() + 10)
        if up is not None:
            stop_nginx()
            proc = subprocess.Popen(a.cmd, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            up = wait_200(a.port, a.host, time.monotonic() + 10)
        if up is None:
            fails += 1
        else:
            listen.append(up[0])
            ready.append(up[1])
        stop(client, again=True)
        client = None
        if proc.poll() is not None:
            break               # nginx does not start: no point going on
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
    p.add_argument("--client", required=True, help="the client's command line (split as by sh)")
    p.add_argument("cmd", nargs="+")
    sys.exit(main(p.parse_args()))
