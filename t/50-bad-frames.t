#!/usr/bin/perl

# Bad yamux on the registration port: random bytes, frames cut short,
# lengths beyond any window, a window update that overflows, stream ids
# reused or of the server's parity, unknown types, pings and go-aways on a
# stream.  Each closes that session only, with go-away(protocol error) and a
# line at info that says what was wrong; meanwhile a real client's tunnel
# keeps serving (a probe asks it all along) and a raw session that behaves
# stays up; the worker never dies.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(workers);
use TunnelRaw qw(frame data_frame msg hostile_start probe_ok bystander_stop
    DATA WINDOW PING GOAWAY SYN ACK FIN RST);

my $t = TunnelTest->new->plan(46);

my $TOKEN = DEVTOKEN;

my ($reg, $probe, $good, @workers) = hostile_start($t);
like($t->read_file("bystander-good.log"), qr/^first bound$/m,
    'a raw session that behaves has a tunnel too');

# (a case: what it sends after hello, or before with "raw"; the reason
# nginx must log)
my @cases = (
    [ 'a version other than 0',
      "\x01" . "\0" x 11, qr/protocol version 1 is not supported/ ],
    [ 'an unknown frame type',
      frame(7, 0, 0, 0), qr/unknown frame type 7/ ],
    [ 'a data frame longer than any window',
      frame(DATA, 0, 1, 0xffffffff),
      qr/4294967295 bytes of data on stream 1 exceed its receive window/ ],
    [ 'data on a stream never opened (odd)',
      data_frame(7, 'x'), qr/frame for stream 7, which was never opened/ ],
    [ 'data on a stream never opened (even)',
      data_frame(4, 'x'), qr/frame for stream 4, which was never opened/ ],
    [ 'a window update on a stream never opened',
      frame(WINDOW, 0, 9, 1), qr/frame for stream 9, which was never opened/ ],
    [ 'a window update that overflows 2^32-1',
      frame(WINDOW, 0, 1, 0xffffffff),
      qr/window update of 4294967295 overflows the send window of stream 1/ ],
    [ 'a SYN with the server\'s parity',
      frame(WINDOW, SYN, 2, 0),
      qr/the peer opened stream 2, an id of our parity/ ],
    [ 'a second SYN for the open control stream',
      frame(WINDOW, SYN, 1, 0), qr/duplicate SYN for open stream 1/ ],
    [ 'a ping on a stream',
      frame(PING, SYN, 5, 0), qr/ping on stream 5, not 0/ ],
    [ 'a ping with neither SYN nor ACK',
      frame(PING, 0, 0, 7), qr/ping with neither SYN nor ACK/ ],
    [ 'a go-away on a stream',
      frame(GOAWAY, 0, 3, 0), qr/go-away on stream 3, not 0/ ],
    [ 'a data frame one byte over the 8 MiB window',
      frame(DATA, 0, 1, 8 * 1024 * 1024 + 1),
      qr/8388609 bytes of data on stream 1 exceed its receive window/ ],
);

for my $c (@cases) {
    my ($what, $bytes, $reason) = @$c;
    my $r = TunnelRaw->session($reg, token => $TOKEN);
    $r->send($bytes);
    my $start = time;
    ok($r->closed(3) && ($r->{goaway} // -1) == 1,
        sprintf('%s: closed with go-away 1 (%.1fs)', $what, time - $start));
    like($t->error_log,
        qr/\[info\] .*session \w+ broke the yamux protocol: $reason/,
        '  error.log says so at info');
}

# a stream id that does not grow: the control stream opened as 5, then 3

my $r = TunnelRaw->connect($reg);
$r->send(frame(WINDOW, SYN, 5, 0)
    . data_frame(5, msg('hello', version => 1, token => $TOKEN))
    . frame(WINDOW, SYN, 3, 0));
ok($r->closed(3) && ($r->{goaway} // -1) == 1,
    'a SYN that reuses a lower id: closed with go-away 1');
like($t->error_log, qr/\[info\] .*broke the yamux protocol: the peer reopened stream 3 \(ids must grow\)/,
    '  error.log says so');

# random bytes, before any hello: each connection is closed, at once or at
# tunnel_handshake_timeout, each with a line saying why

srand(50);
my @random = map {
    my $c = TunnelRaw->connect($reg);
    $c->send(join '', map { chr int rand 256 } 1 .. 64 + int rand 8192);
    $c;
} 1 .. 20;

my $start = time;
my $all = grep { $_->closed(4) } @random;
is($all, 20, sprintf('20 connections of random bytes: all closed (%.1fs)',
    time - $start));
my @why = $t->error_log =~ /\[info\] .*(?:broke the yamux protocol|sent no hello within|bad control message|before hello)/g;
cmp_ok(scalar @why, '>=', 20 + @cases + 1, '  each with a reason in error.log');

# random bytes after hello
$r = TunnelRaw->session($reg, token => $TOKEN);
$r->send("\xfe" . join '', map { chr int rand 256 } 1 .. 4095);
ok($r->closed(3) && ($r->{goaway} // -1) == 1,
    'random bytes after hello: closed with go-away 1');
like($t->error_log, qr/broke the yamux protocol: protocol version 254 is not supported/,
    '  error.log says so');

# frames cut short

$r = TunnelRaw->connect($reg);
$r->send(substr(frame(WINDOW, SYN, 1, 0), 0, 6));
$start = time;
ok($r->closed(4) && time - $start > 1,
    sprintf('half a header and no more, before hello: closed at '
        . 'tunnel_handshake_timeout (%.1fs)', time - $start));
like($t->error_log, qr/\[info\] .*client sent no hello within 2000 ms/,
    '  error.log says so');

$r = TunnelRaw->session($reg, token => $TOKEN, pong => 0);
$r->send(substr(frame(PING, SYN, 0, 1), 0, 7));
$start = time;
ok($r->closed(6) && time - $start > 2,
    sprintf('half a header after hello, then silence: closed after three '
        . 'heartbeats (%.1fs)', time - $start));
like($t->error_log, qr/\[info\] .*session \w+ is dead: nothing received for \d+ ms/,
    '  error.log says so');

$r = TunnelRaw->session($reg, token => $TOKEN, pong => 0);
$r->send(substr(data_frame(1, msg('bind', request_id => 1, kind => 3)),
    0, 16));
$start = time;
ok($r->closed(6) && time - $start > 2,
    sprintf('a data frame cut short after hello: closed after three '
        . 'heartbeats (%.1fs)', time - $start));

$r = TunnelRaw->session($reg, token => $TOKEN);
$r->send(substr(frame(DATA, 0, 1, 100), 0, 5));
$r->close;
ok($t->wait_for_file_match('error.log',
        qr/\[info\] .*session \w+ closed by the client/, 3),
    'a header cut short by the client\'s close: error.log says so');

# a go-away(protocol error) from the client ends its session at once
$r = TunnelRaw->session($reg, token => $TOKEN);
$r->send(frame(GOAWAY, 0, 0, 1));
ok($r->closed(3), 'the client\'s go-away 1: the session is closed');
like($t->error_log, qr/\[info\] .*client is leaving \(go-away 1\)/,
    '  error.log says so');

# the others went on meanwhile

probe_ok($probe, 20, 'the real tunnel');

is(bystander_stop($good), "first bound\nthen bound\n",
    'the raw session that behaves is still up, and still binds');

is(join(' ', sort(workers($t))), join(' ', sort @workers),
    'the worker is the same process as at the start');

ok($t->stop, 'nginx quits gracefully');
