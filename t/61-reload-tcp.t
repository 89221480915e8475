#!/usr/bin/perl

# Reload under load, tcp tunnel: connections to the tunnel's public port
# opened all through 10 reloads (4 workers) all succeed, and long transfers
# in flight across several reloads (8 MiB each way at 1 MiB/s) arrive whole,
# checked by hash; the client keeps its port; the old workers exit.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service workers);

my $RELOADS = 10;
my $EVERY = 1.5;
my $EXIT_BOUND = 15;
my $LOADGEN = "$FindBin::Bin/lib/loadgen.pl";

my $t = TunnelTest->new->plan(11);

my $range = $t->port_range('tcp', 10);

$t->write_config($t->registration_config(tcp => $range, main => <<'EOF'));
worker_processes 4;

events {
    worker_connections 4096;
}

EOF

$t->run;

my $svc = service($t, 'svc', 'tcp', 'local');
$t->tunnel('tcp', 'tcp', $svc, '--plain', '--server',
    '127.0.0.1:' . $t->port('reg'), '--token', DEVTOKEN);
my ($port) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($port, "a tcp tunnel on port $port");
my $client = $t->{procs}{tcp};

my $duration = 2 + $RELOADS * $EVERY + 2;

# new connections all the time; long transfers, each across ~5 reloads
$t->spawn('hello', $^X, $LOADGEN, '-c', 4, '-t', $duration, '-w', 30,
    'hello', $port);
$t->spawn('long', $^X, $LOADGEN, '-c', 3, '-t', $duration - 8, '-w', 60,
    '-r', 1048576, 'echo', $port, 8 * 1048576);

sleep 2;

my @gens;
my $watch = sub {
    my %alive = map { $_ => 1 } workers($t);
    for my $g (grep { !defined $_->[2] } @gens) {
        $g->[2] = time - $g->[0] unless grep { $alive{$_} } keys %{$g->[1]};
    }
};

for my $i (1 .. $RELOADS) {
    push @gens, [ time, { map { $_ => 1 } workers($t) }, undef ];
    kill HUP => $t->{master};

    my $next = time + $EVERY;
    while (time < $next) {
        $watch->();
        sleep 0.05;
    }
}

my $deadline = time + $EXIT_BOUND + 5;
while (time < $deadline && grep { !defined $_->[2] } @gens) {
    $watch->();
    sleep 0.05;
}

$t->wait_exit($_, 90) for qw(hello long);

for my $case (['hello', 'connections opened during the reloads'],
    ['long', '8 MiB transfers across reloads'])
{
    my ($name, $what) = @$case;
    my $log = $t->read_file("$name.out");
    my $ok = () = $log =~ /^ok /mg;
    my @fail = $log =~ /^fail (.*)$/mg;
    my @slow = sort { $b <=> $a } $log =~ /^(?:ok|fail) ([\d.]+)/mg;

    cmp_ok($ok, '>', $name eq 'long' ? 3 : 100, "$what: $ok done"
        . sprintf(' (slowest %.2fs)', $slow[0] // 0))
        or diag($log . $t->read_file("$name.err"));
    is(scalar @fail, 0, '  none failed')
        or diag(join "\n", @fail[0 .. ($#fail < 9 ? $#fail : 9)]);
}

my @took = map { $_->[2] } @gens;
my @sorted = sort { $a <=> $b } grep { defined } @took;
is(scalar(grep { !defined } @took), 0,
    'every generation of old workers exited');
cmp_ok($sorted[-1] // 0, '<', $EXIT_BOUND, "  within ${EXIT_BOUND}s");
diag(sprintf('old workers exited %s s after their HUP (median %.2f, max '
    . '%.2f)', join(' ', map { defined $_ ? sprintf('%.2f', $_) : 'never' }
    @took), @sorted ? $sorted[$#sorted / 2] : 0, $sorted[-1] // 0));

# the same client, the same port
is($t->{procs}{tcp}, $client, 'the client ran all along');
my $r = TunnelService::command($port, 'hello');
is($r->{data}, "hello from local\n", "and still has port $port");

my $moved = () = $t->error_log =~ /asked to reconnect/g;
ok($moved >= $RELOADS, "it was asked to reconnect $moved times");
# (a session that lands in a worker just as it begins to quit has its binds
# refused, "shutting down": its client binds them in its next session)
my @bad = grep { !/the server is shutting down/ }
    $t->error_log =~ /^.*(?:\[error\]|refused \S+ bind).*$/mg;
is(join("\n", @bad[0 .. ($#bad < 5 ? $#bad : 5)]), '',
    'no [error] in error.log, no bind refused but by a quitting worker');
