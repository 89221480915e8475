#!/usr/bin/perl

# A binary upgrade: USR2 to the master (nginx execs /usr/sbin/nginx anew,
# which loads the module again), then, once the new workers run, QUIT to
# the old master.  It works with tunnels: the old workers ask their clients
# to reconnect, the clients land in the new workers and bind the same names
# and port there, and the old nginx exits; the same client processes serve
# on, and nothing alerts.
#
# What it costs, measured with a request every 20 ms to an http tunnel and
# to a tcp tunnel's port: the new nginx has a registry of its own (shared
# memory does not outlive exec), empty until the clients move, which they
# do when the old workers quit.  Until then the new workers answer 404 for
# the http tunnel (the tcp port is still the old workers' alone); after the
# QUIT, within one second, everything is served again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_request
    TOKEN);
use TunnelService qw(service command workers);

my $LOADGEN = "$FindBin::Bin/lib/loadgen.pl";

my $t = TunnelTest->new->plan(14);

my $range = $t->port_range('tcp', 4);

$t->write_config(edge_config($t, workers => 2, tcp => $range));

$t->run(detached => 1);
my $old = $t->{master};
my $d = $t->testdir;

my $port = $t->port('http');
my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);

my $svc = service($t, 'svc', 'tcp', 'local');
$t->tunnel('tcp', 'tcp', $svc, '--plain', '--server',
    '127.0.0.1:' . $t->port('reg'), '--token', TOKEN);
my ($tcp) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;

my $r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{status}, 200, 'an http tunnel');
is(command($tcp // 0, 'hello')->{data}, "hello from local\n",
    "and a tcp tunnel, port $tcp");
my %client = map { $_ => $t->{procs}{$_} } qw(web tcp);

$t->spawn('probe-http', $^X, $LOADGEN, '-t', 30, '-p', 0.02, '-w', 10,
    'http', $port, 'web.tun.test');
$t->spawn('probe-tcp', $^X, $LOADGEN, '-t', 30, '-p', 0.02, '-w', 10,
    'hello', $tcp);
sleep 1;

# USR2: a new master, child of the old one, with workers of its own

my $usr2 = time;
kill USR2 => $old;

my ($new, @new_workers);
while (time < $usr2 + 15) {
    $new = $t->read_file('nginx.pid') =~ /^(\d+)/ ? $1 : 0;
    if ($new && $new != $old) {
        @new_workers = TunnelTest::_children($new);
        last if @new_workers == 2;
    }
    sleep 0.05;
}
my $started = time - $usr2;

ok($new && $new != $old && @new_workers == 2,
    sprintf('USR2: a new master %s with 2 workers in %.2fs', $new // '-',
        $started)) or diag($t->read_file('error.log') =~ /(.*\n){0,20}\z/);
like($t->read_file('nginx.pid.oldbin'), qr/^$old$/m,
    '  the old master\'s pid in nginx.pid.oldbin');

# both generations accept for a second, then the old one quits

sleep 1;
my $quit = time;
kill QUIT => $old;
my $gone = TunnelTest::_gone($old, 40);
my $took = time - $quit;
$t->{master} = $new;

ok($gone, sprintf('QUIT to the old master: it exited after %.2fs', $took));

sleep 1.5;
kill TERM => $t->{procs}{'probe-http'}, $t->{procs}{'probe-tcp'};
$t->wait_exit($_, 10) for qw(probe-http probe-tcp);

# the tunnels, served by the new nginx alone

$r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{status}, 200, 'after the upgrade: the http tunnel');
is(command($tcp // 0, 'hello')->{data}, "hello from local\n",
    "  the tcp tunnel, the same port $tcp");
is(join(' ', map { $t->{procs}{$_} // 'gone' } qw(web tcp)),
    join(' ', map { $client{$_} } qw(web tcp)),
    '  by the same client processes');

my %ours = map { $_ => 1 } @new_workers;
my @bound = $t->error_log =~ /\[info\] (\d+)#\d+: .*\) bound http tunnel/g;
ok(@bound && $ours{$bound[-1]}, '  bound last in a worker of the new nginx')
    or diag("bound in @bound, new workers @new_workers");

# what the probes saw: failures only between the new workers' start and
# the clients' move, none a second after the QUIT

for my $case (['http', 'http tunnel'], ['tcp', 'tcp port']) {
    my ($name, $what) = @$case;
    my $out = $t->read_file("probe-$name.out");
    my @ok = $out =~ /^ok [\d.]+ ([\d.]+)$/mg;
    my @fail = $out =~ /^fail [\d.]+ ([\d.]+ .*)$/mg;
    my @late = grep { (split ' ', $_)[0] > $quit + 1 } @fail;
    my %why;
    $why{ (split ' ', $_, 2)[1] }++ for @fail;
    my @before = grep { (split ' ', $_)[0] < $quit } @fail;

    ok(@ok > 50, "$what: " . @ok . ' answers, ' . @fail . ' failures ('
        . @before . ' before the QUIT)');
    is(scalar @late, 0, '  none later than 1s after the QUIT')
        or diag(join "\n", @late[0 .. ($#late < 9 ? $#late : 9)]);
    diag("$what failures: " . join(', ', map { "$why{$_} x $_" }
        sort keys %why)) if @fail;
}

$t->stop;
like($t->error_log, qr/\[notice\] $new#\d+: exit/,
    'the new nginx quits in the end');
