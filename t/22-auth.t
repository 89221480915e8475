#!/usr/bin/perl

# Who may register and what: a wrong token is refused (the client says so and
# exits 1, nginx says why at info); names and counts are limited per token;
# a connection that says nothing, or no yamux, is closed.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelService qw(service command connect_tcp transfer);
use Time::HiRes qw(time);

my $t = TunnelTest->new->plan(24);

my $range = $t->port_range('tcp', 4);

$t->write_config($t->registration_config(tokens => <<'EOF', reg => <<"EOF"));
alicetoken-0123456789 id=alice names=*.alice.test
one-tunnel-0123456789 id=single tunnels=1
one-stream-0123456789 id=narrow streams=1
EOF
tunnel_tcp_ports $range;
tunnel_tcp_address 127.0.0.1;
tunnel_handshake_timeout 1s;
EOF

$t->run;

my @server = ('--server', '127.0.0.1:' . $t->port('reg'), '--plain');
my $svc = service($t, 'svc', 'tcp', 'local');

# a wrong token

my $start = time;
$t->tunnel('wrong', 'tcp', $svc, @server, '--token', 'not-a-token-0123456789');
my $status = $t->wait_exit('wrong', 10);
my $took = time - $start;

is($status, 1 << 8, 'a wrong token: the client exits with status 1')
    or diag($t->output('wrong'));
ok($took < 5, sprintf('  at once, without retrying (%.1fs)', $took));
like($t->output('wrong'),
    qr/token/i, '  and says the token was not accepted');
like($t->error_log,
    qr/\[info\] .*client 127\.0\.0\.1\S* refused: unknown token/,
    '  error.log says at info: unknown token, and from where');
unlike($t->error_log, qr/not-a-token/,
    '  the token itself is not logged');

# names

$t->tunnel('alice', 'tls', $svc, @server, '--token', 'alicetoken-0123456789',
    '--hostname', 'api.alice.test');
like($t->tunnel_url('alice'), qr{^https://api\.alice\.test\b},
    'a name the token allows is bound')
    or diag($t->output('alice'));

$t->tunnel('bad', 'tls', $svc, @server, '--token', 'alicetoken-0123456789',
    '--hostname', 'api.bob.test');
is($t->wait_exit('bad', 10), 1 << 8,
    'a name the token does not allow: the client exits with status 1');
like($t->output('bad'), qr/api\.bob\.test.*(not allowed|forbidden|may not)/is,
    '  and says the name is not allowed');
like($t->error_log,
    qr/\[info\] .*\(account "alice"\) refused tls bind "api\.bob\.test"/,
    '  error.log says which account was refused which name');
like($t->read_file('alice.out'), qr/bound|https:/,
    '  the other client of that token keeps its tunnel');

# counts: tunnels=1

$t->tunnel('single1', 'tcp', $svc, @server, '--token', 'one-tunnel-0123456789');
like($t->tunnel_url('single1'), qr{^tcp://}, 'tunnels=1: a first tunnel');

$t->tunnel('single2', 'tcp', $svc, @server, '--token', 'one-tunnel-0123456789');
is($t->wait_exit('single2', 10), 1 << 8,
    '  a second one at once: the client exits with status 1');
like($t->output('single2'),
    qr/more tunnels|limit/i, '  and says the limit was reached');
like($t->error_log,
    qr/\[info\] .*\(account "single"\) refused tcp bind .*may not open more tunnels/,
    '  error.log says so');

# counts: streams=1

$t->tunnel('narrow', 'tcp', $svc, @server, '--token', 'one-stream-0123456789');
my ($port) = ($t->tunnel_url('narrow') // '') =~ /:(\d+)$/;

my $held = connect_tcp($port);
print $held "echo\nfirst\n";
my $first = '';
sysread($held, $first, 100);
is($first, "first\n", 'streams=1: a first connection is served');

my $r = command($port, 'hello', timeout => 5);
is($r->{data}, '', '  a second one at the same time is closed');
like($t->error_log,
    qr/\[info\] .*account "narrow" has 1 connections open, its limit: refused/,
    '  error.log says why');

# the limit is the token's, whichever of its sessions carries the stream
$t->tunnel('narrow2', 'tcp', $svc, @server, '--token', 'one-stream-0123456789');
my ($port2) = ($t->tunnel_url('narrow2') // '') =~ /:(\d+)$/;
$r = command($port2, 'hello', timeout => 5);
is($r->{data}, '', '  and one through another session of the token too');

close $held;
select undef, undef, undef, 0.5;
is(command($port2, 'hello', timeout => 5)->{data}, "hello from local\n",
    '  once the first is closed, a new one is served');

# raw connections to the registration port

$start = time;
$r = transfer(connect_tcp($t->port('reg')), undef, no_shutdown => 1,
    timeout => 5);
$took = time - $start;
ok($r->{eof} && $took > 0.5 && $took < 5,
    sprintf('a client that sends nothing is closed after '
        . 'tunnel_handshake_timeout (%.1fs)', $took));
like($t->error_log, qr/\[info\] .*client sent no hello within 1000 ms/,
    '  error.log says so');

$r = transfer(connect_tcp($t->port('reg')), "GET / HTTP/1.0\r\n",
    no_shutdown => 1, timeout => 3);
ok($r->{eof} && $r->{data} !~ /HTTP/,
    'HTTP instead of yamux: the connection is closed');
like($t->error_log, qr/\[info\] .*broke the yamux protocol/,
    '  error.log says the client broke the protocol');

ok($t->stop, 'nginx quits gracefully');
