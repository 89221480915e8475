#!/usr/bin/perl

# tcp ports: a port of tunnel_tcp_ports that another program holds is
# skipped; a full range, a port held by another token, a port outside the
# range or the token's ports= get a clear bind error; a port comes back
# when its tunnel ends.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::IP;
use TunnelTest;
use TunnelService qw(service command);

my $t = TunnelTest->new->plan(23);

my $range = $t->port_range('tcp', 3);
my ($lo, $hi) = split /-/, $range;
my $mid = $lo + 1;

$t->write_config($t->registration_config(domain => 0, tcp => $range,
    tokens => <<"EOF"));
devtoken-0123456789abcdef id=dev
bobtoken-0123456789abcdef id=bob
onetoken-0123456789abcdef id=one ports=$hi
EOF

$t->run;

my $svc = service($t, 'svc', 'tcp', 'local');
my @server = ('--plain', '--server', '127.0.0.1:' . $t->port('reg'));
my @dev = (@server, '--token', 'devtoken-0123456789abcdef');
my @bob = (@server, '--token', 'bobtoken-0123456789abcdef');

my $port_of = sub { (($t->tunnel_url($_[0]) // '') =~ /:(\d+)$/)[0] // 0 };

# another program holds the first port of the range
my $squatter = IO::Socket::IP->new(LocalHost => '127.0.0.1',
    LocalPort => $lo, Proto => 'tcp', Listen => 1, ReuseAddr => 1)
    or die "cannot listen on $lo: $@\n";

$t->tunnel('a', 'tcp', $svc, @dev);
my $pa = $port_of->('a');
ok($pa == $mid || $pa == $hi,
    "port $lo is held by another program: the first tunnel gets $pa");
like($t->error_log,
    qr/\[info\] .*port $lo is used by another program, trying another/,
    '  error.log says why it skipped the port');
is(command($pa, 'hello')->{data}, "hello from local\n", "  port $pa works");

$t->tunnel('b', 'tcp', $svc, @dev);
my $pb = $port_of->('b');
ok($pb && $pb != $pa && $pb != $lo, "the second tunnel gets $pb");

# the range is full now

$t->tunnel('c', 'tcp', $svc, @dev);
is($t->wait_exit('c', 10), 1 << 8,
    'a third tunnel: the range is full, the client exits with status 1');
like($t->output('c'), qr/no free port|ports? .*full/i,
    '  and says there is no free port');
like($t->error_log, qr/\[info\] .*\(account "dev"\) refused tcp bind .*port 0: .*free port/,
    '  error.log says so');

# asking for ports

$t->tunnel('d', 'tcp', $svc, @dev, '--remote-port', $lo);
is($t->wait_exit('d', 10), 1 << 8,
    "--remote-port $lo, held by another program: status 1");
like($t->output('d'), qr/in use/i, '  the port is in use on the server');
like($t->error_log, qr/\[info\] .*refused tcp bind .*port $lo: .*in use/,
    '  error.log says so');

$t->tunnel('e', 'tcp', $svc, @bob, '--remote-port', $pb);
is($t->wait_exit('e', 10), 1 << 8,
    "--remote-port $pb, held by another token: status 1");
like($t->output('e'), qr/taken|in use/i, '  the port is taken');
like($t->error_log, qr/\[info\] .*\(account "bob"\) refused tcp bind .*port $pb:/,
    '  error.log says so');

my $outside = $hi + 1;
$t->tunnel('f', 'tcp', $svc, @bob, '--remote-port', $outside);
is($t->wait_exit('f', 10), 1 << 8,
    "--remote-port $outside, outside tunnel_tcp_ports: status 1");
like($t->output('f'), qr/not allowed|may not|forbidden/i,
    '  the port is not allowed');
like($t->error_log,
    qr/\[info\] .*\(account "bob"\) refused tcp bind .*port $outside:/,
    '  error.log says so');

# a port comes back when its tunnel ends, to anyone

$t->kill_process('a');

my $got;
for (1 .. 20) {
    $t->tunnel("g$_", 'tcp', $svc, @bob, '--remote-port', $pa);
    if ($port_of->("g$_") == $pa) {
        $got = "g$_";
        last;
    }
    $t->wait_exit("g$_", 5);
    select undef, undef, undef, 0.1;
}
ok($got, "the first tunnel ends: another token can have port $pa")
    or diag($t->output('g1'));
is(command($pa, 'hello')->{data}, "hello from local\n",
    "  port $pa works for it");

# ports= in the token: every port of the range is free again, and it may
# still bind only its own

close $squatter;
$t->kill_process($_) for 'b', $got // ();

$t->tunnel('one_bad', 'tcp', $svc, @server, '--token',
    'onetoken-0123456789abcdef', '--remote-port', $lo);
is($t->wait_exit('one_bad', 10), 1 << 8,
    "ports=$hi: --remote-port $lo is refused");
like($t->error_log,
    qr/\[info\] .*\(account "one"\) refused tcp bind .*port $lo:/,
    '  error.log says so');

my $one = 0;
for (1 .. 20) {
    $t->tunnel("one$_", 'tcp', $svc, @server, '--token',
        'onetoken-0123456789abcdef');
    $one = $port_of->("one$_");
    last if $one;
    $t->wait_exit("one$_", 5);
    select undef, undef, undef, 0.1;
}
is($one, $hi, "ports=$hi: without --remote-port the token gets $hi");

unlike($t->error_log, qr/\[(?:error|crit|alert)\]/,
    'no error in error.log');

ok($t->stop, 'nginx quits gracefully');
