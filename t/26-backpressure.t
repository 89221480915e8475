#!/usr/bin/perl

# Back-pressure: a public client that reads nothing while the local service
# sends 64 MiB, and a local service that reads nothing while the public
# client sends 64 MiB.  nginx holds no more than the window per stream (its
# worker's memory stays within tunnel_window per stream plus some slack),
# and once the slow side reads, every byte arrives intact.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(SHUT_WR SOL_SOCKET SO_RCVBUF);
use POSIX ();
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN rss_unmeasured);
use TunnelService qw(service connect_tcp transfer command data_sha
    vm_rss workers);

my $t = TunnelTest->new->plan(11);

my $MiB = 1024 * 1024;
my $N = 64 * $MiB;
my $STREAMS = 4;
my $WINDOW = 1;                 # MiB, tunnel_window and tunnel_window_max:
                                # a window grows while the reader's kernel
                                # buffer fills fast, so without the cap the
                                # bound would be each stream's grown window
my $SLACK = 4;                  # MiB: chunk cache, pools, session buffers

my $range = $t->port_range('tcp', 4);

my $asan = rss_unmeasured();

$t->write_config($t->registration_config(domain => 0, tcp => $range,
    reg => "tunnel_window ${WINDOW}m; tunnel_window_max ${WINDOW}m;"));

$t->run;

my ($worker) = workers($t);
my $svc = service($t, 'svc', 'tcp', 'local');

# the client's own window for public -> local: also 1 MiB
$t->tunnel('client', 'tcp', $svc, '--plain', '--window', "${WINDOW}m",
    '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);
my ($port) = ($t->tunnel_url('client') // '') =~ /:(\d+)$/;
ok($port, 'a tcp tunnel') or diag($t->output('client'));

# warm up: the worker's buffers and caches as after any transfer
command($port, 'source ' . 8 * $MiB . ' 1', timeout => 60);
transfer(connect_tcp($port), 'sink', send => 8 * $MiB, seed => 2,
    timeout => 60);

my $start = vm_rss($worker);

sub rss_during {
    my ($seconds) = @_;
    my $max = 0;
    my $end = time + $seconds;
    while (time < $end) {
        my $r = vm_rss($worker) // 0;
        $max = $r if $r > $max;
        sleep 0.1;
    }
    return $max;
}

my $bound = ($STREAMS * $WINDOW + $SLACK) * 1024;

# slow public readers: small socket buffers, then they read nothing

my $base = vm_rss($worker);
my @slow;

for my $i (1 .. $STREAMS) {
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5);
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 64 * 1024);
    syswrite($s, "source $N " . (10 + $i) . "\n");
    shutdown($s, SHUT_WR);
    push @slow, $s;
}

my $peak = rss_during(3);
my $grew = $peak - $base;

diag(sprintf('slow public readers: worker VmRSS %d KiB before, %d KiB '
    . 'at most while %d readers read nothing (+%d KiB)', $base, $peak,
    $STREAMS, $grew));
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($grew, '<', $bound,
        "$STREAMS public readers stall on 64 MiB each: the worker grows "
        . "by less than $STREAMS x tunnel_window + ${SLACK}m");
}

my @r = map { transfer($_, undef, timeout => 90) } @slow;

is(scalar(grep { $r[$_]{len} == $N } 0 .. $#r), $STREAMS,
    '  once they read, each gets all 64 MiB');
is(scalar(grep { $r[$_]{sha} eq data_sha(11 + $_, $N) } 0 .. $#r), $STREAMS,
    '  intact (sha256)');

# the buffers they filled go back to the system: free chunks are kept only
# while they are used, checked once a second
sleep 2.5;
my $drained = vm_rss($worker);
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($drained - $base, '<', 2048,
        sprintf('  2.5 s later the worker is back within 2 MiB of before '
            . '(%d KiB, %d KiB before)', $drained, $base));
}

# slow local services: they read nothing for 3 seconds

$base = vm_rss($worker);
my @stall;

for my $i (1 .. $STREAMS) {
    my $s = connect_tcp($port);
    push @stall, $s;
}

# a child writes, so that the test can watch meanwhile
my @kids;
for my $i (0 .. $#stall) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = transfer($stall[$i], 'stall 3', send => $N, seed => 30 + $i,
            timeout => 90);
        if (open my $fh, '>', $t->testdir . "/stall$i") {
            print $fh $r->{data} // '';
            close $fh;
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
close $_ for @stall;

$peak = rss_during(2.5);
$grew = $peak - $base;

diag(sprintf('slow local services: worker VmRSS %d KiB before, %d KiB at '
    . 'most while %d services read nothing (+%d KiB)', $base, $peak,
    $STREAMS, $grew));
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($grew, '<', $bound,
        "$STREAMS public clients send 64 MiB each to services that stall: "
        . "the worker grows by less than $STREAMS x tunnel_window + "
        . "${SLACK}m");
}

waitpid($_, 0) for @kids;

my @sums = map { $t->read_file("stall$_") } 0 .. $#kids;
is(scalar(grep { $sums[$_] eq data_sha(30 + $_, $N) . " $N\n" } 0 .. $#sums),
    $STREAMS, '  once the services read, each gets all 64 MiB intact')
    or diag(explain \@sums);

# nothing is left behind: the worker is back near where it was

my $after = vm_rss($worker);
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($after - $start, '<', $SLACK * 1024,
        sprintf('afterwards the worker holds no more than before + %dm '
            . '(%d KiB, %d KiB before)', $SLACK, $after, $start));
}

is(command($port, 'hello')->{data}, "hello from local\n",
    'the tunnel still serves');

unlike($t->error_log, qr/\[error\]/, 'no error in error.log');

ok($t->stop, 'nginx quits gracefully');
