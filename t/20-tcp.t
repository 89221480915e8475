#!/usr/bin/perl

# A tcp tunnel: the client gets a port of tunnel_tcp_ports, and what a
# public client sends there reaches the local service and back, 64 MiB each
# way, checked by SHA-256; half-close is carried; the port is released when
# the client leaves.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service command connect_tcp transfer data_sha);

my $t = TunnelTest->new->plan(19);

my $MiB = 1024 * 1024;
my $range = $t->port_range('tcp', 10);
my ($lo, $hi) = split /-/, $range;

$t->write_config($t->registration_config(tcp => $range));

$t->run;

my $svc = service($t, 'svc', 'tcp', 'local');

$t->tunnel('client', 'tcp', $svc, '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN, '--plain');

my $url = $t->tunnel_url('client');
like($url, qr{^tcp://127\.0\.0\.1:\d+$}, 'the client is given a tcp URL')
    or diag($t->output('client'));

my ($port) = ($url // '') =~ /:(\d+)$/;
$port //= 0;
ok($port >= $lo && $port <= $hi, "its port $port is in $range");

like($t->error_log,
    qr/\[info\] .*session \w+ \(account "dev"\) bound tcp tunnel \Q$url\E/,
    'error.log says at info who bound which port');

is(command($port, 'hello')->{data}, "hello from local\n",
    'a public connection reaches the local service');

# 64 MiB to the service, which answers with their hash once it sees EOF:
# the public client's FIN is carried through, and the answer still comes
# back on the half-closed connection

my $n = 64 * $MiB;
my $r = transfer(connect_tcp($port), 'sink', send => $n, seed => 7);
is($r->{data}, data_sha(7, $n) . " $n\n",
    '64 MiB public -> local arrive intact (sha256), and after the '
    . 'public FIN the answer comes back');
ok($r->{eof} && !$r->{error}, '  then the connection closes cleanly')
    or diag($r->{error});

$r = command($port, "source $n 8");
is($r->{len}, $n, '64 MiB local -> public: every byte arrives');
is($r->{sha}, data_sha(8, $n), '  intact (sha256)');
ok($r->{eof} && !$r->{error}, '  then EOF') or diag($r->{error});

$r = transfer(connect_tcp($port), 'echo', send => $n, seed => 9,
    timeout => 60);
is($r->{len}, $n, '64 MiB both ways at once (echo): every byte comes back');
is($r->{sha}, data_sha(9, $n), '  intact (sha256)');

# half-close the other way: the service closes first, the public side can
# still send, and its bytes still arrive

my $s = connect_tcp($port);
$r = transfer($s, 'source 5 3', no_shutdown => 1, timeout => 5);
is($r->{len}, 5, 'the service closes first: the public client sees EOF');
$r = transfer($s, undef, send => 100000, seed => 4, timeout => 5);
ok(!$r->{error}, '  and may still send on its half') or diag($r->{error});
my $sha = data_sha(4, 100000);
ok($t->wait_for_file_match('svc.out', qr/^after FIN: 100000 $sha$/m, 5),
    '  which the service receives whole after its own FIN');
close $s;

# several at once

my @sk = map { connect_tcp($port) } 1 .. 20;
my @got = map { transfer($_, 'hello', timeout => 10)->{data} } @sk;
is(scalar(grep { $_ eq "hello from local\n" } @got), 20,
    '20 connections opened before any is served: all served');

# the client leaves: the port goes with its tunnel

my $status = $t->kill_process('client');
is($status, 0, 'the client quits with status 0 on SIGTERM');

my $closed = 0;
for (1 .. 50) {
    if (!connect_tcp($port, timeout => 1)) {
        $closed = 1;
        last;
    }
    select undef, undef, undef, 0.1;
}
ok($closed, "port $port is closed once the client has left");

like($t->error_log, qr/\[info\] .*session \w+: client is leaving|closed by the client|client closed its control stream/,
    'error.log says the session ended');

ok($t->stop, 'nginx quits gracefully');
