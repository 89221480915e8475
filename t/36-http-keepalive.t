#!/usr/bin/perl

# Keep-alive through an HTTP tunnel: 100 requests on one public connection,
# all carried over one kept upstream connection (one yamux stream, one
# connection to the local service, no descriptor in nginx when the session
# is in the same worker); tunnel_route's keepalive=0 and
# idle_timeout=; a public client that hangs up mid-response; and a kept
# connection is not reused once its session is gone.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_connect
    http_send http_response http_request);
use TunnelService qw(fd_count workers);

my $t = TunnelTest->new->plan(13);

my $proxy = q{
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Connection "";
};

$t->write_config(edge_config($t,
    workers => 1,
    http => q{
    upstream tunnels_nokeep {
        tunnel_route $host keepalive=0;
    }

    upstream tunnels_short {
        tunnel_route $host idle_timeout=1s;
    }
},
    server => qq{
        location /nokeep/ {
            proxy_pass http://tunnels_nokeep;
            $proxy
        }

        location /short/ {
            proxy_pass http://tunnels_short;
            $proxy
        }

        location /unbuffered/ {
            proxy_pass http://tunnels_nokeep/;
            proxy_buffering off;
            $proxy
        }
}));

$t->run;

my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);
my $port = $t->port('http');

my ($worker) = workers($t);
my $fds = fd_count($worker);

# 100 requests, one public connection
my $s = http_connect($port);
my (%conns, $ok, $r);
for my $i (1 .. 100) {
    http_send($s, "/r$i", host => 'web.tun.test') or last;
    $r = http_response($s, timeout => 10) or last;
    $ok++ if $r->{status} == 200 && $r->{body} eq "hello from web: GET /r$i\n";
    $conns{$r->{headers}{'x-backend-conn'} // '?'}++;
}
is($ok, 100, '100 keep-alive requests on one public connection: all answered');
is(scalar keys %conns, 1,
    '  over one connection to the local service (a kept upstream)');

# the public connection is still open: one more, then Connection: close
http_send($s, '/last', host => 'web.tun.test', close => 1);
$r = http_response($s, timeout => 10);
is($r && $r->{body}, "hello from web: GET /last\n",
    'request 101, with Connection: close');
ok(!sysread($s, my $buf, 1), '  and nginx closes the public connection');
close $s;

# new public connections reuse the kept upstream connection too
my %more;
for my $i (1 .. 5) {
    $r = http_request($port, "/c$i", host => 'web.tun.test');
    $more{$r->{headers}{'x-backend-conn'} // '?'}++ if $r;
}
is_deeply([ keys %more ], [ keys %conns ],
    'requests on new public connections use the same kept connection');

# the session is in this worker: the kept connection is a stream of it, no
# socketpair (nginx may take a moment to close the public connections)
my $deadline = time + 3;
sleep 0.1 while fd_count($worker) != $fds && time < $deadline;
is(fd_count($worker), $fds, '  it holds no descriptor in the worker '
    . "($fds before the first request)");

# keepalive=0: a stream (and a local connection) per request
my %nokeep;
for my $i (1 .. 5) {
    $r = http_request($port, "/nokeep/$i", host => 'web.tun.test');
    $nokeep{$r->{headers}{'x-backend-conn'} // '?'}++
        if $r && $r->{status} == 200;
}
is(scalar keys %nokeep, 5, 'keepalive=0: each request has its own stream');

# idle_timeout=1s: an idle kept connection is closed after a second
$r = http_request($port, '/short/1', host => 'web.tun.test');
my $first = $r && $r->{headers}{'x-backend-conn'};
$r = http_request($port, '/short/2', host => 'web.tun.test');
is($r && $r->{headers}{'x-backend-conn'}, $first,
    'idle_timeout=1s: reused right away');
sleep 1.5;
$r = http_request($port, '/short/3', host => 'web.tun.test');
is($r && $r->{status}, 200, '  after 1.5 s idle: the request is answered');
isnt($r && $r->{headers}{'x-backend-conn'}, $first,
    '  on a new connection');

# a public client hangs up in the middle of a response that nginx does not
# buffer: the stream is reset, so the client closes its local connection
# (after a FIN the local service would stay blocked on a full window); its
# own stream (keepalive=0), counted once /short/'s kept one has timed out
sleep 1.2;
my $client_fds = fd_count($t->{procs}{web});
my $cut = http_connect($port);
http_send($cut, '/unbuffered/data/' . 64 * 1048576, host => 'web.tun.test');
my $got = 0;
while ($got < 1048576) {
    my $n = sysread($cut, my $buf, 65536) or last;
    $got += $n;
}
sleep 1;                    # the windows fill up, the local service blocks
close $cut;
$deadline = time + 5;
sleep 0.1 while fd_count($t->{procs}{web}) != $client_fds && time < $deadline;
is(fd_count($t->{procs}{web}), $client_fds, 'a public client hangs up after '
    . "$got bytes of 64 MiB: the client closes its local connection")
    or diag(`ls -l /proc/$t->{procs}{web}/fd`);

# the client reconnects as a new session: kept connections of the old one
# are not used for it
$t->kill_process('web');
start_http_tunnel($t, 'web', $backend);

$ok = 0;
for my $i (1 .. 5) {
    $r = http_request($port, "/new$i", host => 'web.tun.test');
    $ok++ if $r && $r->{status} == 200
        && $r->{body} eq "hello from web: GET /new$i\n";
}
is($ok, 5, 'after the client reconnected: every request answered');

unlike($t->error_log, qr/\[error\]/, 'no [error] in error.log');
