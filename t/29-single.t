#!/usr/bin/perl

# "master_process off": nginx in one process, with no worker to hand
# connections to, still serves tunnels by name and by port, and quits
# cleanly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service command connect_tcp transfer data_sha);

my $t = TunnelTest->new->plan(7);

my $range = $t->port_range('tcp', 2);

$t->write_config($t->registration_config(main => "master_process off;\n\n",
    reg => "tunnel_tcp_ports $range;\ntunnel_tcp_address 127.0.0.1;",
    app => 1));

$t->run;

my $svc = service($t, 'svc', 'tcp', 'local');
my @args = ('--plain', '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);

$t->tunnel('named', 'tls', $svc, '--name', 'app', @args);
$t->tunnel('tcp', 'tcp', $svc, @args);

is($t->tunnel_url('named'), 'https://app.tun.test', 'a named tunnel')
    or diag($t->output('named'));
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
