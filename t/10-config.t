#!/usr/bin/perl

# "nginx -t" refuses bad tunnel directives with a message that says what is
# wrong, and accepts the example edge configuration.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;

my $t = TunnelTest->new;

$t->write_file('tunnel.tokens', <<'EOF', 0600);
# a comment
0123456789abcdef0123 id=alice names=*.alice.tun.test,api.example.com
fedcba9876543210fedc id=bob ports=30010-30019 tunnels=3 streams=100
EOF

# each case: directives for a registration server, and what nginx -t says
my @bad = (
    [ "tunnel_server on;\n",
      qr/"tunnel_server" needs "tunnel_tokens"/,
      'tunnel_server without tokens' ],
    [ "tunnel_server on; tunnel_tokens %%TESTDIR%%/tunnel.tokens; "
      . "tunnel_tcp_ports 99-100;\n",
      qr/port range "99-100" starts below 1024/,
      'privileged tcp ports' ],
    [ "tunnel_tcp_ports 40000-30000;\n",
      qr/invalid port range "40000-30000"/,
      'reversed port range' ],
    [ "tunnel_tcp_ports abc;\n",
      qr/invalid port range "abc"/,
      'port range that is not a number' ],
    [ "tunnel_domain -bad-.example.com;\n",
      qr/invalid tunnel_domain "-bad-.example.com"/,
      'domain that is not a DNS name' ],
    [ "tunnel_url ftp ftp://\$name;\n",
      qr/invalid tunnel kind "ftp"/,
      'unknown kind in tunnel_url' ],
    [ "tunnel_server on; tunnel_tokens %%TESTDIR%%/tunnel.tokens; "
      . "tunnel_window 1k;\n",
      qr/tunnel_window must be between 256k and 2047m/,
      'window below the yamux minimum' ],
    [ "tunnel_server on; tunnel_tokens %%TESTDIR%%/tunnel.tokens; "
      . "tunnel_window 16m; tunnel_window_max 8m;\n",
      qr/tunnel_window_max must be between tunnel_window \(16777216\) and 2047m/,
      'auto-tuning bound below the window' ],
    [ "tunnel_tokens %%TESTDIR%%/missing.tokens;\n",
      qr/missing\.tokens/,
      'token file that does not exist' ],
    [ "tunnel_pass \$ssl_preread_server_name ftp;\n",
      qr/invalid tunnel_pass kind "ftp"/,
      'unknown kind in tunnel_pass' ],
    [ "tunnel_reconnect_grace soon;\n",
      qr/invalid tunnel_reconnect_grace "soon": a time such as 10s/,
      'tunnel_reconnect_grace that is not a time' ],
    [ "tunnel_reconnect_grace 10s; tunnel_reconnect_grace 20s;\n",
      qr/"tunnel_reconnect_grace" directive is duplicate/,
      'tunnel_reconnect_grace twice' ],
    [ "tunnel_idle_timeout -1;\n",
      qr/invalid tunnel_idle_timeout "-1": a time such as 10s/,
      'tunnel_idle_timeout that is not a time' ],
    [ "tunnel_idle_timeout 5 minutes;\n",
      qr/invalid number of arguments in "tunnel_idle_timeout"/,
      'tunnel_idle_timeout with two values' ],
    [ "tunnel_server on; tunnel_tokens %%TESTDIR%%/tunnel.tokens; "
      . "tunnel_url http http://\$name.\$name.\$name.\$name.\$name;\n",
      qr/tunnel_url http "[^"]+" can make URLs longer than 1024 bytes/,
      'tunnel_url template whose URLs can be too long for status' ],
);

for my $case (@bad) {
    my ($directives, $expect, $name) = @$case;

    my ($ok, $out) = $t->test_config(<<"EOF");
stream {
    tunnel_zone tunnels 1m;
    server {
        listen 127.0.0.1:%%PORT_reg%%;
        $directives
    }
}
EOF
    ok(!$ok, "nginx -t refuses: $name");
    like($out, qr/\[emerg\] .*$expect/, "  and says why: $name")
        or diag($out);
}

my ($ok, $out) = $t->test_config(<<'EOF');
stream {
    server {
        listen 127.0.0.1:%%PORT_reg%%;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
    }
}
EOF
ok(!$ok, 'nginx -t refuses: tunnel_server without a zone');
like($out, qr/"tunnel_server" needs "tunnel_zone"/, '  and says why');

($ok, $out) = $t->test_config(<<'EOF');
stream {
    tunnel_zone tunnels 1m;
    tunnel_zone tunnels 1m;
}
EOF
ok(!$ok, 'nginx -t refuses: two tunnel_zone');
like($out, qr/"tunnel_zone" directive is duplicate/, '  and says why');

($ok, $out) = $t->test_config(<<'EOF');
http {
    upstream tunnels {
        tunnel_route $host keepalive=lots;
    }
}
EOF
ok(!$ok, 'nginx -t refuses: a bad tunnel_route parameter');
like($out, qr/invalid parameter "keepalive=lots"/, '  and says why');

($ok, $out) = $t->test_config(<<'EOF');
stream {
    tunnel_zone tunnels 1m;

    server {
        listen 127.0.0.1:%%PORT_reg%%;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
        tunnel_domain tun.test;
        tunnel_tcp_ports 30000-30099;
        tunnel_tcp_address 127.0.0.1;
        tunnel_url http http://$name:8080;
        tunnel_reconnect_grace 0;
        tunnel_idle_timeout 1h;
    }

    server {
        listen 127.0.0.1:%%PORT_tls%%;
        ssl_preread on;
        tunnel_pass $ssl_preread_server_name;
    }

    upstream tls_tunnels {
        tunnel_route $ssl_preread_server_name;
    }
}

http {
    upstream tunnels {
        tunnel_route $host keepalive=16 idle_timeout=30s;
    }

    server {
        listen 127.0.0.1:%%PORT_http%%;
        location / { proxy_pass http://tunnels; }
        location /tunnels { tunnel_status; }
    }
}
EOF
ok($ok, 'nginx -t accepts every directive in place') or diag($out);

$t->done_testing;
