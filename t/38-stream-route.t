#!/usr/bin/perl

# tunnel_route in a stream upstream: stream's proxy_pass reaches a tunnel,
# here an http tunnel by a fixed name, so that stream's own directives
# (timeouts, limits, access) apply to tunnelled connections.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest qw(request);
use TunnelHTTP qw(edge_config start_backend start_http_tunnel);

my $t = TunnelTest->new->plan(7);

$t->write_config(edge_config($t,
    workers => 2,
    stream => q{
    upstream web_tunnel {
        tunnel_route web.tun.test http;
    }

    upstream by_port {
        tunnel_route $tunnel_for_port http;
    }

    map $server_port $tunnel_for_port {
        %%PORT_stream_map%%   web.tun.test;
        default              nobody.tun.test;
    }

    server {
        listen 127.0.0.1:%%PORT_stream%% reuseport;
        proxy_pass web_tunnel;
        proxy_timeout 5s;
    }

    server {
        listen 127.0.0.1:%%PORT_stream_map%%;
        listen 127.0.0.1:%%PORT_stream_none%%;
        proxy_pass by_port;
    }
}));

$t->run;

my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);

my $req = "GET /raw HTTP/1.0\r\nHost: anything\r\n\r\n";

my $r = request($t->port('stream'), $req);
like($r // '', qr{^HTTP/1\.1 200 OK\r\n}, 'stream proxy_pass to a tunnel');
like($r // '', qr{\r\n\r\nhello from web: GET /raw\n\z},
    '  the bytes reach the service as sent');
unlike($r // '', qr/X-Forwarded-For/i, '  untouched (no http proxying)');

# several connections: both workers, each one answered
my $ok = 0;
for my $i (1 .. 20) {
    my $x = request($t->port('stream'),
        "GET /s$i HTTP/1.0\r\nHost: x\r\n\r\n");
    $ok++ if ($x // '') =~ m{\r\n\r\nhello from web: GET /s$i\n\z};
}
is($ok, 20, '20 stream connections: all answered');

# the key is a complex value: a map of the port
$r = request($t->port('stream_map'), $req);
like($r // '', qr{hello from web: GET /raw}, 'a key from a map');

# no tunnel for the key: the connection is closed, the log says why
$r = request($t->port('stream_none'), $req);
is($r // '', '', 'no tunnel for the key: closed without an answer');

$t->stop;
like($t->error_log, qr/no http tunnel is online for "nobody\.tun\.test"/,
    '  error.log: no http tunnel is online for "<name>"');
