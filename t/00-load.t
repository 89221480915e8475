#!/usr/bin/perl

# The module loads into nginx: "nginx -t" passes, an unknown directive is
# refused clearly, and nginx starts, serves, reloads and stops with no alert.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest qw(request http_get);

my $t = TunnelTest->new->plan(7);

$t->write_config(<<'EOF');
stream {
    server {
        listen 127.0.0.1:%%PORT_stream%%;
        return "stream ok\n";
    }
}

http {
    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / {
            return 200 "http ok\n";
        }
    }
}
EOF

my ($ok, $out) = $t->test_config;
ok($ok, 'nginx -t passes with the tunnel module loaded') or diag($out);

($ok, $out) = $t->test_config(<<'EOF');
stream {
    server {
        listen 127.0.0.1:%%PORT_bad%%;
        tunnel_no_such_directive on;
    }
}
EOF
ok(!$ok, 'nginx -t fails on an unknown directive');
like($out,
    qr/\[emerg\] .*unknown directive "tunnel_no_such_directive" in \S+:\d+/,
    'and names the directive and the line');

$t->run;

is(request($t->port('stream'), ''), "stream ok\n", 'stream server answers');
like(http_get($t->port('http'), '/'),
    qr{^HTTP/1\.[01] 200 .*\r\n\r\nhttp ok\n\z}s, 'http server answers');
ok($t->reload, 'reload: new workers up, old ones gone');
ok($t->stop, 'nginx quits gracefully');
