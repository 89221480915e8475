#!/usr/bin/perl

# Floods on the registration port: 100,000 SYNs, pings (answers read, and
# not read), window updates and empty data frames, a hello sent one byte at
# a time (slowloris), 200 connections that say nothing, binds whose answers
# are never read.  Each ends the offending session only, with one line at
# info that says why (not one per frame); a real client's tunnel keeps
# serving meanwhile, a raw session that behaves stays up, the worker never
# dies.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(workers vm_rss);
use TunnelRaw qw(frame data_frame msg hostile_start probe_ok bystander_stop
    DATA WINDOW PING SYN);

my $t = TunnelTest->new->plan(28);

my $TOKEN = DEVTOKEN;

my ($reg, $probe, $good, @workers) = hostile_start($t,
    main => "events {\n    worker_connections 1024;\n}\n\n",
    listen => 'backlog=1024',
    reg => 'listen 127.0.0.1:%%PORT_small%% sndbuf=8k;');
my $rss0 = vm_rss($workers[0]);

my $count = sub {
    my ($re) = @_;
    return scalar(() = $t->error_log =~ /$re/g);
};

# 100,000 SYNs: the client opens one stream only, its control stream

my $r = TunnelRaw->session($reg, token => $TOKEN);
my $start = time;
$r->send(join('', map { frame(WINDOW, SYN, 2 * $_ + 1, 0) } 1 .. 100000),
    10);
ok($r->closed(5), sprintf('100,000 SYNs: the session is closed (%.1fs)',
    time - $start));
like($t->error_log,
    qr/\[info\] .*session \w+ opened stream 3 besides its control stream, closing/,
    '  error.log says why');
cmp_ok($count->(qr/opened stream \d+/), '<', 10,
    '  in a line or so, not one per SYN');

# pings as fast as the server answers them, answers read

my %flood = (
    'pings' => frame(PING, SYN, 0, 7),
    'window updates of 0' => frame(WINDOW, 0, 1, 0),
    'empty data frames' => frame(DATA, 0, 1, 0),
);

for my $what (sort keys %flood) {
    $r = TunnelRaw->session($reg, token => $TOKEN);
    my $batch = $flood{$what} x 100000;
    my ($sent, $start) = (0, time);
    while (!$r->{eof} && time - $start < 20) {
        $sent += $r->send($batch, 1);
        $r->pump(0);
    }
    ok($r->{eof} || $r->closed(1), sprintf('a flood of %s, the answers '
        . 'read: closed after %.1f MB (%.1fs)', $what, $sent / 1e6,
        time - $start));
    like($t->error_log,
        qr/\[info\] .*session \w+ floods: \d+ bytes of frames carried \d+ bytes of data/,
        '  error.log says why');
}
cmp_ok($count->(qr/ floods: /), '==', 3, '  one line each');

# pings, answers never read: the server stops reading, then gives up

# Whole frames, never reading: until the socket takes no more for 2s, or
# for $seconds with a $pause after each batch.
my $flood = sub {
    my ($r, $frames, $seconds, $pause) = @_;
    my ($sent, $out, $start) = (0, '', time);
    local $SIG{PIPE} = 'IGNORE';
    while (time - $start < ($seconds // 10)) {
        if ($out eq '') {
            sleep $pause if $pause && $sent;
            $out = $frames;
        }
        my $n = syswrite($r->sock, $out);
        last if !defined $n && !$!{EAGAIN};
        if (defined $n) {
            substr($out, 0, $n) = '';
            $sent += $n;
        } elsif ($pause) {
            sleep $pause;
        } elsif (!IO::Select->new($r->sock)->can_write(2)) {
            last;
        }
    }
    return $sent;
};

$r = TunnelRaw->session($reg, token => $TOKEN, pong => 0);
$start = time;
my $sent = $flood->($r, frame(PING, SYN, 0, 7) x 10000);
ok($r->closed(8), sprintf('a flood of pings, no answer read: closed after '
    . '%.1f MB (%.1fs)', $sent / 1e6, time - $start));
cmp_ok($count->(qr/ floods: /), '==', 4, '  as a flood, error.log says');

# pings too slow to be a flood, answers not read, through small socket
# buffers (else the kernel takes megabytes of answers): once they stop
# leaving, the server stops reading, then gives up

$r = TunnelRaw->connect($t->port('small'), pong => 0, rcvbuf => 4096);
$r->hello(token => $TOKEN);
$start = time;
$sent = $flood->($r, frame(PING, SYN, 0, 7) x 2000, 2, 0.1);
$t->wait_for_file_match('error.log', qr/does not read:/, 6);
ok($r->closed(2), sprintf('pings, no answer read: closed after %.1f MB '
    . '(%.1fs)', $sent / 1e6, time - $start));
like($t->error_log,
    qr/\[info\] .*session \w+ does not read: \d+ bytes waited for \d+ ms/,
    '  error.log says the client does not read');

# binds whose answers are never read: the control stream's window fills

$r = TunnelRaw->session($reg, token => $TOKEN, pong => 0);
my $bind = data_frame(1, msg('bind', request_id => 1, kind => 1,
    name => 'not.under.the.domain'));
$start = time;
$sent = $flood->($r, $bind x 1000);
ok($r->closed(8), sprintf('binds, no answer read: closed after %d sent '
    . '(%.1fs)', $sent / length($bind), time - $start));
like($t->error_log,
    qr/\[info\] .*session \w+: control stream blocked \((?:window full|[^)]*)\), closing/,
    '  error.log says why');

# slowloris: a hello one byte every 0.1 s

$r = TunnelRaw->connect($reg);
my $hello = frame(WINDOW, SYN, 1, 0)
    . data_frame(1, msg('hello', version => 1, token => $TOKEN));
$start = time;
for my $byte (split //, $hello) {
    last if $r->send($byte, 1) < 1 || time - $start > 6;
    $r->pump(0.1) or last;
}
my $took = time - $start;
ok($r->closed(3) && $took < 3, sprintf('a hello one byte every 0.1s: '
    . 'closed at tunnel_handshake_timeout (%.1fs)', time - $start));
like($t->error_log, qr/\[info\] .*client sent no hello within 2000 ms/,
    '  error.log says why');

# 200 connections that say nothing

my $before = $count->(qr/client sent no hello within/);
my @silent = map { TunnelRaw->connect($reg) } 1 .. 200;
is(scalar(grep { defined } @silent), 200, '200 connections that say '
    . 'nothing');
$start = time;
my $closed = grep { $_ && $_->closed(5) } @silent;
is($closed, 200, sprintf('  all closed at tunnel_handshake_timeout '
    . '(%.1fs)', time - $start));
is($count->(qr/client sent no hello within/) - $before, 200,
    '  each with a line in error.log');

# the others went on meanwhile

my $slowest = probe_ok($probe, 20, 'the real tunnel');
cmp_ok($slowest, '<', 1, '  none waited a second');

is(bystander_stop($good), "first bound\nthen bound\n",
    'the raw session that behaves is still up, and still binds');

my $rss1 = vm_rss($workers[0]);
cmp_ok($rss1 - $rss0, '<', 32 * 1024, sprintf('the worker\'s RSS: %d KiB '
    . 'before, %d KiB after', $rss0, $rss1));

is(join(' ', sort(workers($t))), join(' ', sort @workers),
    'the worker is the same process as at the start');

ok($t->stop, 'nginx quits gracefully');
