#!/usr/bin/env python3
"""Hold N concurrent idle connections through a tunnel, end to end, then wait.

Runs the local service itself: a sink on 127.0.0.1:SINK_PORT that echoes one byte on each
connection and then keeps it open until the peer closes. Opens N connections to CONNECT_PORT
(the tunnel's public port forwarding to the sink; for the direct path it is the sink port),
sends one byte on each and waits for the echo, so every connection is established through the
whole path. Then writes a JSON line to --ready FILE and holds all connections idle until
--hold seconds pass or SIGTERM/SIGINT arrives, then closes everything and exits.

With --role sink or --role connect the two halves run in separate processes
(each then needs only N descriptors: a process may not be allowed 2 x N).
With --role sink, --ready is written once the sink listens.

Loopback only (addresses are fixed to 127.0.0.1); every wait is bounded.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import time


async def main(a):
    accepted = 0
    sink_writers = []

    async def sink(reader, writer):
        nonlocal accepted
        accepted += 1
        sink_writers.append(writer)
        try:
            b = await reader.read(1)
            if b:
                writer.write(b)
                await writer.drain()
                while await reader.read(4096):
                    pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    srv = None
    if a.role != "connect":
        srv = await asyncio.start_server(sink, "127.0.0.1", a.sink_port,
                                         backlog=4096)
    sem = asyncio.Semaphore(a.concurrency)
    conns = []
    fails = []

    async def one(i):
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", a.connect_port), a.timeout)
                w.write(b"x")
                await w.drain()
                got = await asyncio.wait_for(r.readexactly(1), a.timeout)
                if got != b"x":
                    raise RuntimeError("bad echo")
                conns.append((r, w))
            except Exception as e:  # noqa: BLE001 - counted and reported
                fails.append(type(e).__name__)

    t0 = time.monotonic()
    if a.role != "sink":
        await asyncio.gather(*(one(i) for i in range(a.n)))
    setup = time.monotonic() - t0
    info = {"n": a.n, "ok": len(conns), "fail": len(fails), "accepted": accepted,
            "setup_s": round(setup, 3), "fail_kinds": sorted(set(fails))}
    tmp = a.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(info) + "\n")
    os.rename(tmp, a.ready)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.hold)
    except asyncio.TimeoutError:
        pass
    for _, w in conns:
        w.close()
    if srv:
        srv.close()
    for w in sink_writers:
        w.close()
    await asyncio.sleep(0.2)
    return 0 if not fails else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sink-port", type=int, required=True)
    p.add_argument("--connect-port", type=int, required=True)
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64, help="connects in flight at once")
    p.add_argument("--timeout", type=float, default=10.0, help="per connect / echo, seconds")
    p.add_argument("--hold", type=float, default=60.0, help="max seconds to hold, then exit")
    p.add_argument("--ready", required=True, help="file written (JSON) once all are up")
    p.add_argument("--role", choices=("both", "sink", "connect"), default="both")
    sys.exit(asyncio.run(main(p.parse_args())))
