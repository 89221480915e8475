#!/usr/bin/env python3
#
# Writes the seed corpus of the fuzzers: tests/fuzz/corpus/<fuzzer>/seed-*.
# Each seed is a meaningful case (valid frames, valid messages, each
# protocol error), written from PROTOCOL.md, not from core/.  Inputs that
# found bugs are kept next to them as regress-* files by hand.
#
#     python3 tests/fuzz/seeds.py

import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')

# yamux
DATA, WU, PING, GOAWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8


def hdr(t, flags, sid, length, version=0):
    return struct.pack('>BBHII', version, t, flags, sid, length)


# fuzz_yamux ops, one session
def feed(b, piece=0):
    out = b''
    while b:
        chunk, b = b[:255], b[255:]
        out += bytes([0x00 | piece << 4, len(chunk)]) + chunk
    return out


def drain(arg=15):
    return bytes([0x01 | arg << 4])


def open_():
    return b'\x02'


def write(idx, n, side=0):
    return bytes([0x03 | (idx | side) << 4, n])


def reserve(idx, n, side=0):
    return bytes([0x04 | (idx | side) << 4, n])


def consumed(idx, kib, side=0):
    return bytes([0x05 | (idx | side) << 4, kib])


def close(idx, side=0):
    return bytes([0x06 | (idx | side) << 4])


def reset(idx, side=0):
    return bytes([0x07 | (idx | side) << 4])


def ping(arg, side=0):
    return bytes([0x08 | (arg | side) << 4])


def go_away(code, side=0):
    return bytes([0x09 | (code | side) << 4])


def behave(bits, side=0):
    return bytes([0x0a | side << 4, bits & 0xff, bits >> 8])


def stats():
    return b'\x0b'


def fail_alloc(after, side=0):
    return bytes([0x0e | side << 4, after])


def synth(t, flags, raw_id, length):
    # op 12: a frame header, raw stream id (< 128), zero payload
    return bytes([0x0c, t, flags, 0x80 | raw_id]) + struct.pack('>I', length)


# two sessions: 0x02 in setup; side 8 (arg bit 3) is the server
S = 8


def pump():
    return b'\x01'


def send(direction, amount):
    return bytes([0x00 | direction << 4, amount])


def recv(direction, piece, amount):
    return bytes([0x00 | (direction | 2 | piece << 2) << 4, amount])


def yamux_seeds():
    s = {}
    syn1 = hdr(WU, SYN, 1, 0)

    s['server-accept-data-fin'] = bytes([0x00]) + feed(syn1) + drain() \
        + feed(hdr(DATA, 0, 1, 5) + b'hello') + consumed(0, 1) \
        + feed(hdr(WU, FIN, 1, 0)) + close(0) + drain()
    s['server-echo-syn-on-data'] = bytes([0x00]) + behave(0x82) \
        + feed(hdr(DATA, SYN, 1, 4) + b'ping') + drain() \
        + feed(hdr(DATA, FIN, 1, 3) + b'end') + drain()
    s['client-open-ack-write'] = bytes([0x01]) + open_() + drain() \
        + feed(hdr(WU, ACK, 1, 768 * 1024)) + write(0, 50) \
        + reserve(0, 0) + drain() \
        + feed(hdr(DATA, FIN, 1, 10) + b'0123456789') + close(0) + drain()
    s['client-large-window'] = bytes([0x09]) + open_() + open_() + drain() \
        + feed(hdr(WU, ACK, 1, 8 * 1024 * 1024 - 256 * 1024)) \
        + write(0, 255) + write(0, 255) + write(1, 255) + drain(3) \
        + drain()
    s['pings'] = bytes([0x00]) + feed(hdr(PING, SYN, 0, 7)) \
        + feed(hdr(PING, ACK, 0, 9)) + ping(3) + drain()
    s['ping-flood-bytewise'] = bytes([0x00]) \
        + feed(b''.join(hdr(PING, SYN, 0, i) for i in range(40)), 1) \
        + drain()
    s['go-away'] = bytes([0x00]) + feed(syn1) + feed(hdr(GOAWAY, 0, 0, 0)) \
        + go_away(0) + open_() + drain() + feed(hdr(WU, SYN, 3, 0)) \
        + drain() + stats()
    s['go-away-codes'] = bytes([0x01]) + feed(hdr(GOAWAY, 0, 0, 1)) \
        + feed(hdr(GOAWAY, 0, 0, 2)) + go_away(2) + drain()
    s['reset-and-late-data'] = bytes([0x00]) + feed(syn1) \
        + feed(hdr(DATA, 0, 1, 3) + b'abc') + feed(hdr(WU, RST, 1, 0)) \
        + feed(hdr(DATA, 0, 1, 3) + b'old') + reset(0) + drain()
    s['local-reset-before-syn'] = bytes([0x01]) + open_() + reset(0) \
        + drain()
    s['window-blocked'] = bytes([0x01]) + open_() + drain() \
        + feed(hdr(WU, ACK, 1, 0)) + write(0, 255) * 30 + drain() \
        + feed(hdr(WU, 0, 1, 64 * 1024)) + write(0, 255) + drain()
    s['max-streams'] = bytes([0x10]) + feed(syn1) \
        + feed(hdr(WU, SYN, 3, 0)) + drain()
    s['small-queue'] = bytes([0x41]) + open_() + open_() \
        + feed(hdr(WU, ACK, 1, 0) + hdr(WU, ACK, 3, 0)) \
        + write(0, 200) + write(1, 200) + drain(2) + drain(5) + close(0) \
        + drain()
    s['refuse-and-reset-on-open'] = bytes([0x00]) + behave(0x21) \
        + feed(syn1) + behave(0x20) + feed(hdr(WU, SYN, 3, 0)) + drain()
    s['fin-both-ways'] = bytes([0x00]) + behave(0x0a) + feed(syn1) \
        + feed(hdr(WU, FIN, 1, 0)) + drain()

    # each protocol error
    s['err-version'] = bytes([0x00]) + feed(hdr(PING, SYN, 0, 0, 1))
    s['err-unknown-type'] = bytes([0x00]) + feed(hdr(4, 0, 0, 0))
    s['err-beyond-window'] = bytes([0x00]) + feed(syn1) \
        + synth(DATA, 0, 1, 256 * 1024 + 1)
    s['err-never-opened'] = bytes([0x00]) + feed(hdr(DATA, 0, 9, 1) + b'x')
    s['err-duplicate-syn'] = bytes([0x00]) + feed(syn1) + feed(syn1)
    s['err-wrong-parity'] = bytes([0x00]) + feed(hdr(WU, SYN, 2, 0))
    s['err-id-reuse'] = bytes([0x00]) + feed(syn1) \
        + feed(hdr(WU, RST, 1, 0)) + feed(syn1)
    s['err-data-after-fin'] = bytes([0x00]) + feed(syn1) \
        + feed(hdr(WU, FIN, 1, 0)) + feed(hdr(DATA, 0, 1, 1) + b'x')
    s['err-window-overflow'] = bytes([0x00]) + feed(syn1) \
        + feed(hdr(WU, 0, 1, 0xffffffff))
    s['err-ping-on-stream'] = bytes([0x00]) + feed(hdr(PING, SYN, 1, 0))
    s['err-ping-no-flags'] = bytes([0x00]) + feed(hdr(PING, 0, 0, 0))
    s['err-go-away-on-stream'] = bytes([0x00]) + feed(hdr(GOAWAY, 0, 3, 0))
    s['err-after-go-away'] = bytes([0x00]) + go_away(0) \
        + feed(hdr(9, 0, 0, 0)) + drain()

    # two sessions
    s['two-basic'] = bytes([0x02]) + open_() + write(0, 100) + pump() \
        + write(0, 100, S) + pump() + close(0) + close(0, S) + pump()
    s['two-large-window'] = bytes([0x0a]) + open_() + open_() + open_() \
        + pump() + behave(0x00, S) + write(0, 255) * 8 + write(1, 255) * 8 \
        + send(0, 255) + recv(0, 3, 255) + pump() + consumed(0, 255, S) \
        + pump() + write(2, 255, 0) + pump()
    s['two-reset-ping-go-away'] = bytes([0x02]) + open_() + open_() \
        + write(0, 50) + reset(0) + ping(5) + ping(6, S) + pump() \
        + go_away(0, S) + open_() + pump() + write(1, 9) + close(1) \
        + close(1, S) + pump()
    s['two-small-queue'] = bytes([0x42]) + behave(0x0e) + behave(0x0a, S) \
        + open_() + open_() + reserve(0, 255) + write(1, 255) \
        + send(0, 10) + recv(0, 1, 10) + send(0, 255) + recv(0, 2, 255) \
        + pump() + close(0) + close(1) + pump()
    s['two-callbacks'] = bytes([0x42]) + behave(0x3f0e) \
        + behave(0x0d0a, S) + open_() + open_() + open_() + write(0, 200) \
        + write(1, 200) + close(0) + pump() + close(0, S) + reset(1, S) \
        + pump() + go_away(0, S) + pump() + close(2) + close(2, S) + pump()
    s['closed-callback-reserves'] = bytes([0x01]) + behave(0x0100) \
        + open_() + open_() + drain() \
        + feed(hdr(WU, ACK, 1, 0) + hdr(WU, ACK | FIN, 3, 0)) + close(1) \
        + drain(0) + drain()
    s['alloc-failures'] = bytes([0x00]) + fail_alloc(1) \
        + feed(hdr(WU, SYN, 1, 0)) + fail_alloc(1) + open_() \
        + fail_alloc(2) + feed(hdr(WU, SYN, 3, 0)) + write(0, 255) \
        + fail_alloc(1) + close(1) + drain()
    s['two-alloc-failures'] = bytes([0x42]) + open_() + pump() \
        + fail_alloc(1) + reset(0) + fail_alloc(1, S) + close(0, S) \
        + open_() + fail_alloc(1) + write(1, 255) + pump()
    # the last block full to 10 bytes: a RST before the SYN needs a block
    s['two-reset-without-memory'] = bytes([0x42]) + open_() \
        + reserve(0, 82) * 5 + reserve(0, 34) + fail_alloc(1) + reset(0) \
        + reset(0) + pump() + write(0, 50, S) + pump()
    s['two-server-opens'] = bytes([0x22]) + open_() + bytes([0x82]) \
        + bytes([0x82]) + write(0, 77, S) + write(1, 77, S) + pump() \
        + close(0, S) + reset(1, S) + pump()
    return s


# control messages (PROTOCOL.md section 3)
HELLO, WELCOME, ERROR, BIND, BOUND, BIND_ERROR, UNBIND, UNBOUND, NOTICE, \
    STREAM = range(1, 11)


def field(tag, value, int_size=4):
    if isinstance(value, int):
        value = value.to_bytes(int_size, 'big')
    return struct.pack('>BH', tag, len(value)) + value


def msg(t, *fields):
    body = bytes([t]) + b''.join(fields)
    return struct.pack('>H', len(body)) + body


def msg_seeds():
    s = {}
    s['hello'] = msg(HELLO, field(1, 1), field(16, b'secret-token'),
                     field(17, b'tunnel'), field(18, b'0.1.0'),
                     field(25, b'3f2a9c0d1e4b5a69'))
    s['welcome'] = msg(WELCOME, field(1, 1), field(2, 10000),
                       field(9, 1024), field(19, b'00000000000000a1'))
    s['error'] = msg(ERROR, field(3, 3),
                     field(20, b'the server did not accept this token'))
    s['bind-http'] = msg(BIND, field(4, 1), field(5, 1), field(6, 0),
                         field(21, b'myapp'))
    s['bind-tcp-any-port'] = msg(BIND, field(4, 2), field(5, 3))
    s['bound'] = msg(BOUND, field(4, 1), field(5, 1), field(6, 0),
                     field(7, 1), field(21, b'myapp.tun.example.com'),
                     field(22, b'http://myapp.tun.example.com'))
    s['bind-error'] = msg(BIND_ERROR, field(4, 1), field(3, 4),
                          field(20, b'this name is already in use'))
    s['unbind'] = msg(UNBIND, field(7, 1))
    s['unbound'] = msg(UNBOUND, field(7, 1), field(3, 15))
    s['notice-reconnect'] = msg(NOTICE, field(3, 1))
    s['notice-info'] = msg(NOTICE, field(3, 2), field(20, b'hello there'))
    s['stream'] = msg(STREAM, field(7, 1), field(5, 1),
                      field(23, b'203.0.113.7'), field(8, 51234),
                      field(24, b'myapp.tun.example.com'))
    # integers of 1 to 8 bytes, unknown and foreign fields, order
    s['int-sizes'] = msg(BIND, field(4, 7, 1), field(5, 2, 8),
                         field(6, 443, 2))
    s['unknown-fields'] = msg(UNBIND, field(200, b'future'),
                              field(7, 9), field(16, b'not for unbind'),
                              field(31, b''))
    s['empty-strings'] = msg(HELLO, field(1, 1), field(16, b''),
                             field(17, b''))
    s['sequence'] = s['hello'] + s['bind-http'] + s['unbind'] \
        + s['stream'][:7]
    # rejections
    s['bad-type'] = msg(11, field(7, 1))
    s['bad-missing'] = msg(BOUND, field(4, 1), field(5, 1), field(7, 1))
    s['bad-int-size'] = msg(UNBIND, field(7, 1, 9))
    s['bad-too-long'] = msg(BIND, field(4, 1), field(5, 1),
                            field(21, b'a' * 254))
    s['bad-field-past-end'] = struct.pack('>H', 5) \
        + bytes([UNBIND, 7, 0, 4, 1])
    return s


# fuzz_ctl: byte 0 the server (bits 0-1 domain: none, tun.test, a.b, 239
# bytes; 2-3 tcp ports: none, 30000-30099, 1-65535, 7-7; 4-5 the token's:
# any, 30010-30019, 40000-40010, 30050-65535; 6 token refused; 7 accepted
# late), byte 1 (bits 0-3 drain before that many events, 15 never; 4-7 how
# the bytes are cut), byte 2 a seed for the cuts; then the client's bytes.
def ctl(cfg, stream, drain_at=15, cut=3, seed=1):
    return bytes([cfg, drain_at | cut << 4, seed]) + stream


def hello(version=1, token=b'secret-token', name=b'tunnel', ver=b'0.1.0',
          instance=b'3f2a9c0d1e4b5a69'):
    f = [field(1, version), field(16, token)]
    if name is not None:
        f.append(field(17, name))
    if ver is not None:
        f.append(field(18, ver))
    if instance is not None:
        f.append(field(25, instance))
    return msg(HELLO, *f)


def bind(rid, kind, name=None, port=None):
    f = [field(4, rid), field(5, kind)]
    if name is not None:
        f.append(field(21, name))
    if port is not None:
        f.append(field(6, port))
    return msg(BIND, *f)


def ctl_seeds():
    s = {}
    h = hello()
    DOMAIN, TCP, TOKEN_NARROW, TOKEN_OUT = 0x01, 0x04, 0x10, 0x20
    REFUSE, LATE = 0x40, 0x80

    s['session'] = ctl(DOMAIN | TCP, h + bind(1, 1, b'myapp')
                       + bind(2, 2, b'API.Example.com') + bind(3, 1, b'')
                       + bind(4, 1) + bind(5, 3) + bind(6, 3, port=30050)
                       + msg(UNBIND, field(7, 1)))
    s['session-bytewise'] = ctl(DOMAIN | TCP, h + bind(1, 1, b'a')
                                + msg(UNBIND, field(7, 1)), cut=0)
    s['names-bad'] = ctl(DOMAIN, h + b''.join(
        bind(i, 1, n) for i, n in enumerate([
            b'a..b', b'.a', b'a.', b'-a.b', b'a-.b', b'a_b.c',
            b'caf\xc3\x28', b'a\n2020/01/01 [error] forged', b'x' * 64,
            b'x' * 245,
            b'.'.join([b'a' * 63] * 4), b'A' * 63 + b'.' + b'B' * 63])))
    s['names-253'] = ctl(DOMAIN, h + bind(1, 2, b'.'.join(
        [b'a' * 63] * 3 + [b'b' * 61])) + bind(2, 2, b'x' * 244))
    s['no-domain-no-tcp'] = ctl(0, h + bind(1, 1, b'label') + bind(2, 1)
                                + bind(3, 2, b'full.example.org')
                                + bind(4, 3, port=5) + bind(5, 9))
    s['long-domain'] = ctl(0x03 | TCP, h + bind(1, 1, b'x' * 13)
                           + bind(2, 1, b'y' * 14) + bind(3, 1))
    s['tcp-token-narrow'] = ctl(TCP | TOKEN_NARROW, h + bind(1, 3)
                                + bind(2, 3, port=30009)
                                + bind(3, 3, port=30010)
                                + bind(4, 3, port=30019)
                                + bind(5, 3, port=70000)
                                + bind(6, 3, port=30010 + 65536))
    s['tcp-token-outside'] = ctl(TCP | TOKEN_OUT, h + bind(1, 3)
                                 + bind(2, 3, port=40000))
    s['tcp-all-ports'] = ctl(0x08 | 0x30, h + bind(1, 3, port=65535)
                             + bind(2, 3, port=30049) + bind(3, 3, port=1))
    s['tcp-one-port'] = ctl(0x0c, h + bind(1, 3, port=7) + bind(2, 3, port=8))
    s['draining'] = ctl(DOMAIN | TCP, h + bind(1, 1, b'a') + bind(2, 9)
                        + bind(3, 1, b'a..b') + msg(UNBIND, field(7, 1))
                        + bind(4, 3), drain_at=2)
    s['drained-at-once'] = ctl(DOMAIN, h + bind(1, 1, b'a'), drain_at=0)
    s['token-refused'] = ctl(DOMAIN | REFUSE, h + bind(1, 1, b'a'))
    s['token-late'] = ctl(DOMAIN | LATE, h + bind(1, 1, b'a') * 400, cut=12)
    s['before-hello'] = ctl(DOMAIN, bind(1, 1, b'a') + h)
    s['unbind-before-hello'] = ctl(DOMAIN, msg(UNBIND, field(7, 1)))
    s['second-hello'] = ctl(DOMAIN, h + bind(1, 1, b'a') + h)
    s['server-messages'] = ctl(DOMAIN, h + msg(WELCOME, field(1, 1),
                                               field(19, b'x')))
    s['stream-before-hello'] = ctl(DOMAIN, msg(STREAM, field(7, 1),
                                               field(5, 3)))
    s['version-2'] = ctl(DOMAIN, hello(version=2))
    s['name-newline'] = ctl(DOMAIN, hello(ver=b'1\n2020/01/01 forged'))
    s['name-utf8'] = ctl(DOMAIN, hello(name=b'bad\xc3\x28\xff'))
    s['instance-escape'] = ctl(DOMAIN, hello(instance=b'\x1b[2J'))
    s['hello-empty'] = ctl(DOMAIN, hello(token=b'', name=b'', ver=None,
                                         instance=b''))
    s['length-4095'] = ctl(DOMAIN, b'\x0f\xff' + b'x' * 20)
    s['length-65535'] = ctl(DOMAIN, h + b'\xff\xff\x01')
    # a hello of 4096 bytes in all, the most the server takes
    base = msg(HELLO, field(1, 1), field(16, b'secret-token'))
    big = msg(HELLO, field(1, 1), field(16, b'secret-token'),
              field(254, b'z' * (4096 - len(base) - 3)))
    assert len(big) == 4096
    s['hello-4096'] = ctl(DOMAIN, big + bind(1, 1, b'a'), cut=0)
    s['no-type'] = ctl(DOMAIN, h + b'\x00\x00')
    s['type-99'] = ctl(DOMAIN, msg(99))
    s['field-twice'] = ctl(DOMAIN, h + msg(UNBIND, field(7, 1), field(7, 2)))
    return s


def write_all(name, seeds):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith('seed-'):
            os.unlink(os.path.join(d, f))
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, 'seed-' + k), 'wb') as f:
            f.write(v)
    print('%s: %d seeds' % (name, len(seeds)), file=sys.stderr)


if __name__ == '__main__':
    write_all('fuzz_yamux', yamux_seeds())
    write_all('fuzz_msg', msg_seeds())
    write_all('fuzz_ctl', ctl_seeds())
