#!/usr/bin/env python3
"""Parsing and the results table for tests/bench/run.sh.

  report.py iperf FILE [mbit]  iperf3 -J output -> Gbit/s (Mbit/s): the median
                             of the receiver's 1-second intervals (omitted
                             ones left out)
  report.py wrk FILE         wrk --latency output -> "req/s p50ms p99ms errors"
  report.py json FILE KEY..  values of KEYs in a one-line JSON file
  report.py table TSV        the markdown table from run.sh's results

TSV lines are "path<TAB>key<TAB>value" (one per round: the table shows the
median over rounds) and "meta<TAB>name<TAB>value" (labels, settings).
"""
import json
import re
import statistics
import sys


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def cmd_iperf(path, unit="gbit"):
    try:
        d = json.load(open(path))
        rx = d
        if not d.get("start", {}).get("test_start", {}).get("reverse"):
            rx = d.get("server_output_json") or d    # the server received
        v = [i["sum"]["bits_per_second"] for i in rx["intervals"]
             if not i["sum"].get("omitted") and i["sum"]["seconds"] > 0.5]
        if not v:
            v = [d["end"]["sum_received"]["bits_per_second"]]
        print("%.3f" % (statistics.median(v) / (1e6 if unit == "mbit" else 1e9)))
    except Exception:                                 # noqa: BLE001
        print("err")


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        return float("nan")
    n, u = float(m.group(1)), m.group(2)
    return {"us": n / 1e3, "ms": n, "s": n * 1e3, "m": n * 6e4}[u]


def cmd_wrk(path):
    rps = p50 = p99 = None
    err = 0
    for line in open(path, errors="replace"):
        f = line.split()
        if line.startswith("Requests/sec"):
            rps = float(f[1])
        elif re.match(r"\s+50(\.0+)?%", line):
            p50 = ms(f[1])
        elif re.match(r"\s+99(\.0+)?%", line):
            p99 = ms(f[1])
        elif "Socket errors" in line:
            err += sum(int(x) for x in re.findall(r"\d+", line))
        elif "Non-2xx" in line:
            err += int(f[-1])
    if rps is None:
        print("err err err err")
    else:
        print("%.0f %.2f %.2f %d" % (rps, p50, p99, err))


def cmd_json(path, keys):
    try:
        d = json.loads(open(path).readline())
        print(" ".join(str(d.get(k, "err")) for k in keys))
    except Exception:                                 # noqa: BLE001
        print(" ".join("err" for _ in keys))


# ---------------------------------------------------------------- table --

# key, row title, format, better ("hi", "lo", None: no ratio)
ROWS = [
    ("up1", "TCP, 1 conn ↑ (Gbit/s)", "%.2f", "hi"),
    ("down1", "TCP, 1 conn ↓ (Gbit/s)", "%.2f", "hi"),
    ("up8", "TCP, 8 conns ↑ (Gbit/s)", "%.2f", "hi"),
    ("down8", "TCP, 8 conns ↓ (Gbit/s)", "%.2f", "hi"),
    ("up1.cpu", "relay CPU %, 1 conn ↑ (100 = 1 core)", "%.0f", None),
    ("ka.rps", "HTTP keep-alive req/s, 64 conns ᴴ", "%.0f", "hi"),
    ("ka.p50", "… p50 ms", "%.2f", "lo"),
    ("ka.p99", "… p99 ms", "%.2f", "lo"),
    ("close.rps", "HTTP Connection: close req/s ᴴ", "%.0f", "hi"),
    ("close.p99", "… p99 ms", "%.2f", "lo"),
    ("tka.rps", "HTTP keep-alive req/s over TCP forwarding ᵀ", "%.0f", "hi"),
    ("tka.p99", "… p99 ms", "%.2f", "lo"),
    ("tclose.rps", "new connections/s over TCP forwarding ᵀ", "%.0f", "hi"),
    ("tclose.p99", "… p99 ms", "%.2f", "lo"),
    ("rtt.up", "50 ms RTT, 1 conn ↑ (Mbit/s) ᴿ", "%.0f", "hi"),
    ("rtt.down", "50 ms RTT, 1 conn ↓ (Mbit/s) ᴿ", "%.0f", "hi"),
    ("fresh.srv", "RSS KiB server, idle ᴹ", "%.0f", "lo"),
    ("fresh.cli", "RSS KiB client, idle, 1 tunnel ᴹ", "%.0f", "lo"),
    ("idle.srv", "bytes per idle stream, server ᴵ", "%.0f", "lo"),
    ("idle.cli", "bytes per idle stream, client ᴵ", "%.0f", "lo"),
    ("idle.ok", "idle streams held ᴵ", "%.0f", None),
    ("sess.srv", "bytes per idle session, nginx, plain ˢ", "%.0f", "lo"),
    ("sess.tls", "bytes per idle session, nginx, TLS ˢ", "%.0f", "lo"),
    ("reg.median", "registration ms, median (plain) ᴳ", "%.2f", "lo"),
    ("reg.p99", "registration ms, p99 (plain) ᴳ", "%.2f", "lo"),
    ("regtls.median", "registration ms, median (TLS) ᴳ", "%.2f", "lo"),
    ("regtls.p99", "registration ms, p99 (TLS) ᴳ", "%.2f", "lo"),
    ("reconnect.median", "reconnect ms after restart, median ᶜ", "%.0f", "lo"),
    ("reconnect.p99", "reconnect ms after restart, p99 ᶜ", "%.0f", "lo"),
]


def num(v):
    try:
        f = float(v)
        return f if f == f else None
    except (TypeError, ValueError):
        return None


def load(tsv):
    vals, meta = {}, {}
    for line in open(tsv, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) != 3:
            continue
        if f[0] == "meta":
            meta[f[1]] = f[2]
        else:
            vals.setdefault((f[0], f[1]), []).append(f[2])
    med = {}
    for k, v in vals.items():
        n = [num(x) for x in v]
        n = [x for x in n if x is not None]
        med[k] = statistics.median(n) if n else None
    return med, meta


def cmd_table(tsv):
    med, meta = load(tsv)
    paths = meta.get("paths", "").split()
    ref = meta.get("ref", "")
    if ref not in paths:
        ref = next((p for p in paths if p.startswith("ours")), paths[0])
    label = {p: meta.get("label." + p, p) for p in paths}

    out = []
    w = out.append
    w("| workload | " + " | ".join(label[p] for p in paths) + " |")
    w("|---" * (len(paths) + 1) + "|")
    for key, title, fmt, better in ROWS:
        if not any(med.get((p, key)) is not None for p in paths):
            continue
        cells = []
        r = med.get((ref, key))
        for p in paths:
            v = med.get((p, key))
            if v is None:
                cells.append("–")
                continue
            c = fmt % v
            if p == ref:
                c = "**" + c + "**"
            elif better and r:
                c += " (%.2f)" % (v / r)
            cells.append(c)
        w("| " + title + " | " + " | ".join(cells) + " |")
    w("")
    w("Cells: median over %s round(s); in brackets the ratio path / **%s**. "
      % (meta.get("rounds", "?"), label.get(ref, ref)) +
      "Throughput is the median of the receiver's 1-second iperf3 intervals "
      "(%s s each, 1 s omitted); wrk -t2 -c64 -d%ss." %
      (meta.get("T", "?"), meta.get("T", "?")))
    w("ᴴ ngx_tunnel: its http tunnel (nginx http proxy → tunnel_route "
      "keepalive=64 → client → service); nginx proxy: http proxy_pass with "
      "keepalive 64; ssh -R, yamux-go: their TCP forwarding. "
      "ᵀ ngx_tunnel: a tcp tunnel to the HTTP service (each connection is a "
      "new yamux stream and a new local connection); nginx proxy: stream "
      "proxy_pass; the others as ᴴ (measured once). "
      "ᴿ %s; direct = iperf3 through the relay alone (no tunnel). "
      % meta.get("rtt", "") +
      "ᴹ fresh processes; ngx_tunnel server = its nginx workers (4 tunnels "
      "registered), client = one tunnel process. "
      "ᴵ %s idle connections held end to end through the path (RSS "
      "difference / count). " % meta.get("idle_n", "?") +
      "ˢ %s registrations (one http tunnel each, regload) held on a fresh "
      "1-worker nginx; RSS difference / count. " % meta.get("sessions", "?") +
      "ᴳ connect, [TLS,] hello, bind, bound; %s in a row (regload). "
      % meta.get("reg_n", "?") +
      "ᶜ %s rounds, each with a fresh client bound to a 1-worker nginx "
      "that is stopped (TERM) and started again: from the new master's "
      "start to the first 200 through the tunnel (nginx itself answers "
      "after %s ms, median)."
      % (meta.get("reconnect_n", "?"), fmtv(med.get((ref, "listen.median")),
                                             "%.0f")))

    w("")
    w(targets(med, meta))
    return "\n".join(out)


def fmtv(v, fmt="%.2f"):
    return "–" if v is None else fmt % v


def targets(med, meta):
    """Issue 6's targets, checked against this run."""
    o = "ours1"
    rows = []

    def ratio(name, a, b, k, limit, better="hi"):
        va, vb = med.get((a, k)), med.get((b, k))
        if va is None or vb is None or not vb:
            rows.append((name, "–", "not measured"))
            return
        r = va / vb
        ok = r >= limit if better == "hi" else r <= limit
        rows.append((name, "%.2f×" % r, "met" if ok else "**missed**"))

    def value(name, a, k, limit, unit):
        v = med.get((a, k))
        if v is None:
            rows.append((name, "–", "not measured"))
            return
        rows.append((name, ("%.1f " % v) + unit,
                     "met" if v <= limit else "**missed**"))

    for d, arrow in (("up1", "↑"), ("down1", "↓")):
        ratio("1-conn TCP %s ≥ 2× yamux-go (plain)" % arrow,
              o, "yamux", d, 2.0)
        ratio("1-conn TCP %s ≥ 1.25× ssh -R (plain)" % arrow,
              o, "ssh", d, 1.25)
        ratio("1-conn TCP %s ≥ 1× ssh -R (TLS link)" % arrow,
              "ours1tls", "ssh", d, 1.0)
    ratio("HTTP keep-alive req/s ≥ 1.3× ssh -R", o, "ssh", "ka.rps", 1.3)
    ratio("HTTP keep-alive req/s ≥ 0.75× nginx http proxy",
          o, "nginx", "ka.rps", 0.75)
    ratio("HTTP keep-alive p99 ≤ 2× nginx http proxy",
          o, "nginx", "ka.p99", 2.0, "lo")
    ratio("new connections/s ≥ 2× ssh -R (tcp tunnel)",
          o, "ssh", "tclose.rps", 2.0)
    ratio("new connections/s ≥ 2× ssh -R (http tunnel)",
          o, "ssh", "close.rps", 2.0)
    for d, arrow in (("rtt.up", "↑"), ("rtt.down", "↓")):
        ratio("50 ms RTT %s ≥ 0.8× no tunnel" % arrow, o, "direct", d, 0.8)
    value("≤ 16 KiB per idle session in nginx (plain)", o, "sess.srv",
          16384, "bytes")
    value("≤ 2 KiB per idle stream in nginx", o, "idle.srv", 2048, "bytes")
    value("registration median ≤ 5 ms", o, "reg.median", 5, "ms")
    value("reconnect after restart median ≤ 500 ms", o, "reconnect.median",
          500, "ms")

    t = ["| target (issue 6), ngx_tunnel 1 worker | measured | |",
         "|---|---|---|"]
    t += ["| %s | %s | %s |" % r for r in rows]
    return "\n".join(t)


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    cmd, arg = argv[1], argv[2]
    if cmd == "iperf":
        cmd_iperf(arg, *argv[3:4])
    elif cmd == "wrk":
        cmd_wrk(arg)
    elif cmd == "json":
        cmd_json(arg, argv[3:])
    elif cmd == "table":
        print(cmd_table(arg))
    else:
        die(__doc__)


if __name__ == "__main__":
    main(sys.argv)
