#!/usr/bin/perl

# "master_process off": nginx in one process, with no worker to hand
# connections to, still serves tunnels by name and by port, and quits
# cleanly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelService qw(service command connect_tcp transfer data_sha);

my $t = TunnelTest->new->plan(7);

my $range = $t->port_range('tcp', 2);

$t->write_file('tunnel.tokens', "devtoken-0123456789abcdef id=dev\n", 0600);

$t->write_config(<<"EOF");
master_process off;

stream {
    tunnel_zone tunnels 1m;

    server {
        listen 127.0.0.1:%%PORT_reg%%;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
        tunnel_domain tun.test;
        tunnel_tcp_ports $range;
        tunnel_tcp_address 127.0.0.1;
    }

    server {
        listen 127.0.0.1:%%PORT_app%%;
        tunnel_pass app.tun.test;
    }
}
EOF

$t->run;

my $svc = service($t, 'svc', 'tcp', 'local');
my @args = ('--plain', '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', 'devtoken-0123456789abcdef');

$t->tunnel('named', 'tls', $svc, '--name', 'app', @args);
$t->tunnel('tcp', 'tcp', $svc, @args);

is($t->tunnel_url('named'), 'https://app.tun.test', 'a named tunnel')
    or diag($t->read_file('named.out') . $t->read_file('named.err'));
my ($port) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($port, 'a tcp tunnel');

is(command($t->port('app'), 'hello')->{data}, "hello from local\n",
    'tunnel_pass reaches the named tunnel');
is(command($port, 'hello')->{data}, "hello from local\n",
    'the tcp port reaches its tunnel');

my $n = 8 * 1024 * 1024;
my $r = transfer(connect_tcp($port), 'echo', send => $n, seed => 5);
is($r->{sha}, data_sha(5, $n), '8 MiB both ways, intact');

unlike($t->error_log, qr/\[error\]/, 'no error in error.log');

ok($t->stop, 'nginx quits gracefully');
