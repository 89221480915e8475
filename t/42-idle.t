#!/usr/bin/perl

# tunnel_idle_timeout: a public connection of a tunnel (a tcp port, or
# tunnel_pass, from whichever worker accepted it) with no byte either way
# for that long is closed, its stream reset, with an info line; one that
# moves bytes is not.  Connections nginx proxies itself (tunnel_route, a
# socketpair) are bound by proxy_read_timeout instead; 0 means no limit.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use IO::Socket::IP;
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelService qw(service);
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_request
    TOKEN);

my $t = TunnelTest->new->plan(14);

my $range = $t->port_range('tcp', 2);
my $range0 = $t->port_range('tcp0', 2);

$t->write_config(edge_config($t,
    workers => 2,
    tcp => $range,
    registration => 'tunnel_idle_timeout 1s;',
    stream => qq{
    server {                        # the same, with no idle timeout
        listen 127.0.0.1:%%PORT_reg0%%;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
        tunnel_tcp_ports $range0;
        tunnel_tcp_address 127.0.0.1;
        tunnel_url tcp tcp://127.0.0.1:\$port;
        tunnel_idle_timeout 0;
    }

    server {                        # plain bytes to the tls tunnel "app";
        listen 127.0.0.1:%%PORT_app%% reuseport;    # either worker takes
        tunnel_pass app.tun.test;                   # them
    }
}));

$t->run;

my $svc = service($t, 'svc', 'tcp', 'A');
my @client = ('--plain', '--token', TOKEN, '--log-format', 'text');
my $idle_line = join '', '\[info\] .*tunnel: no data either way for 1000 ',
    'ms \(tunnel_idle_timeout\), closing the connection and resetting ',
    'stream \d+ of session \w+';
$idle_line = qr/$idle_line/;
my $idle_lines = sub { scalar(() = $t->error_log =~ /$idle_line/g) };

sub open_echo {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5) or return undef;
    syswrite($s, "echo\n");
    return $s;
}

# seconds until the peer closes $s (EOF or reset), reading what comes;
# undef if it is still open after $timeout
sub closed_after {
    my ($s, $timeout) = @_;
    my $start = time;
    my $sel = IO::Select->new($s);
    while (time - $start < $timeout) {
        next unless $sel->can_read(0.1);
        my $n = sysread($s, my $buf, 4096);
        return time - $start if !$n;
    }
    return undef;
}

# one byte each $every seconds for $for seconds, each echoed back: true if
# every byte came back
sub keep_busy {
    my ($s, $every, $for) = @_;
    my $sel = IO::Select->new($s);
    for my $i (1 .. int($for / $every)) {
        sleep $every;
        syswrite($s, 'x') or return 0;
        $sel->can_read(2) or return 0;
        sysread($s, my $buf, 1) or return 0;
    }
    return 1;
}

### a tcp port

$t->tunnel('tcp', 'tcp', $svc, @client, '--server',
    '127.0.0.1:' . $t->port('reg'));
my ($tport) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($tport, 'a tcp tunnel');

my $s = open_echo($tport);
my $took = closed_after($s, 5);
ok(defined $took && $took > 0.8 && $took < 3,
    sprintf('a tcp connection idle for 1 s is closed (after %s s)',
        defined $took ? sprintf('%.1f', $took) : 'more than 5'));
ok($t->wait_for_file_match('error.log', $idle_line, 3),
    '  error.log says why at info');

$s = open_echo($tport);
ok(keep_busy($s, 0.4, 3), 'one that moves a byte each 0.4 s for 3 s '
    . 'stays open');
$took = closed_after($s, 5);
ok(defined $took, '  and is closed once it stops');

### tunnel_pass, accepted by either worker

$t->tunnel('app', 'tls', $svc, @client, '--name', 'app', '--server',
    '127.0.0.1:' . $t->port('reg'));
like($t->tunnel_url('app') // '', qr{^https://app\.tun\.test},
    'a tls tunnel');

my $before = $idle_lines->();
my @socks = map { open_echo($t->port('app')) } 1 .. 6;
my @took = map { closed_after($_, 5) } @socks;
is(scalar(grep { defined && $_ < 3 } @took), 6,
    '6 idle tunnel_pass connections, over both workers: all closed')
    or diag(explain \@took);
my $deadline = time + 3;
sleep 0.1 while $idle_lines->() < $before + 6 && time < $deadline;
is($idle_lines->() - $before, 6, '  each with its line');

$s = open_echo($t->port('app'));
ok(keep_busy($s, 0.4, 2.5), '  a busy one stays open');
close $s;

### http through tunnel_route: proxy_read_timeout applies, not ours

my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend, '--name', 'web');

$before = $idle_lines->();
my $start = time;
my $r = http_request($t->port('http'), '/sleep/2.5', host => 'web.tun.test',
    timeout => 10);
is($r && $r->{status}, 200, sprintf('an http response 2.5 s in coming '
    . 'through a socketpair: 200 (%.1f s)', time - $start));
is($idle_lines->() - $before, 0, '  no idle timeout there');

### tunnel_idle_timeout 0

$t->tunnel('tcp0', 'tcp', $svc, @client, '--server',
    '127.0.0.1:' . $t->port('reg0'));
my ($tport0) = ($t->tunnel_url('tcp0') // '') =~ /:(\d+)$/;
ok($tport0, 'a tcp tunnel of a server with tunnel_idle_timeout 0');

$s = open_echo($tport0);
ok(!defined closed_after($s, 2.5), '  a connection idle for 2.5 s stays '
    . 'open');
ok(keep_busy($s, 0.1, 0.3), '  and still works');
