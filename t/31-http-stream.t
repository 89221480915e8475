#!/usr/bin/perl

# Responses that are streamed through an HTTP tunnel: a chunked response,
# server-sent events with "proxy_buffering off" (the first event reaches
# the public client while the local service still holds the response
# open), and proxy_read_timeout on a service that does not answer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use Test::More;
use Time::HiRes qw(time);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_connect
    http_send http_response http_request);

my $t = TunnelTest->new->plan(11);

$t->write_config(edge_config($t,
    workers => 2,
    server => q{
        location = /sse {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }

        location /sleep/ {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 1s;
        }
}));

$t->run;

my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);
my $port = $t->port('http');

# chunked: the service's chunks arrive, and the response ends properly
my $r = http_request($port, '/chunked', host => 'web.tun.test');
is($r && $r->{status}, 200, 'chunked response: 200');
like($r && $r->{headers}{'transfer-encoding'} // '', qr/chunked/,
    '  passed on chunked to an HTTP/1.1 client');
is($r && $r->{body}, join('', map { "chunk $_\n" } 1 .. 5),
    '  with every chunk, in order');

# and on HTTP/1.0, where nginx ends the body by closing
$r = http_request($port, '/chunked', host => 'web.tun.test',
    version => '1.0');
is($r && $r->{body}, join('', map { "chunk $_\n" } 1 .. 5),
    'chunked response to an HTTP/1.0 client: the same body');

# server-sent events: the first event, while the service holds the rest
my $s = http_connect($port);
http_send($s, '/sse', host => 'web.tun.test',
    headers => "Accept: text/event-stream\r\n");

my ($got, $start) = ('', time);
while ($got !~ /data: first\n\n/ && time - $start < 5) {
    IO::Select->new($s)->can_read(0.5) or next;
    sysread($s, my $buf, 65536) or last;
    $got .= $buf;
}

like($got, qr{^HTTP/1\.1 200 }, 'SSE: the response head arrives');
like($got, qr/data: first\n\n/,
    '  and the first event, while the service holds the response open');
unlike($got, qr/data: second|\r\n0\r\n\r\n/, '  the response has not ended');

# let the service finish: the second event and the end follow
$t->write_file('sse-release', '');
$start = time;
while ($got !~ /\r\n0\r\n\r\n/ && time - $start < 10) {
    IO::Select->new($s)->can_read(0.5) or next;
    sysread($s, my $buf, 65536) or last;
    $got .= $buf;
}
like($got, qr/data: first\n\n.*data: second\n\n.*\r\n0\r\n\r\n/s,
    '  then the second event and the end of the response');
close $s;

# proxy_read_timeout applies to the tunnel as to any upstream
$start = time;
$r = http_request($port, '/sleep/5', host => 'web.tun.test');
my $took = time - $start;
is($r && $r->{status}, 504, 'proxy_read_timeout 1s: a slow service gets 504');
ok($took < 1.8, sprintf('  after a second, not a second per try (%.1fs)',
    $took));

# and the tunnel still works after that
$r = http_request($port, '/sleep/0.1', host => 'web.tun.test');
is($r && $r->{body}, "slept 0.1\n", 'a quick answer under the timeout');
