#!/usr/bin/perl

# What a hostile client can make nginx hold.
#
# 1,000 streams that are never read: a raw client binds a tcp tunnel,
# accepts every stream nginx opens but never gives any window back; 1,000
# public connections each push 384 KiB.  Each stream carries 256 KiB (the
# initial window, the STREAM header included) and not a byte more; the rest
# waits in the public sockets' kernel buffers, which are not the worker's:
# its VmRSS grows by far less than a window per stream.
#
# Churn: binds and unbinds, refused binds, pings in bursts, for as long as
# a session lives, cost nothing that lasts (the worker's VmRSS does not grow
# with their number).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN rss_unmeasured);
use TunnelService qw(connect_tcp vm_rss workers);
use TunnelRaw qw(frame data_frame msg PING SYN);

my $t = TunnelTest->new->plan(14);

my $KiB = 1024;
my $STREAMS = 1000;
my $PUSH = 384 * $KiB;
my $WINDOW = 256 * $KiB;
my $TOKEN = DEVTOKEN;
my $range = $t->port_range('tcp', 60);

my $asan = rss_unmeasured();

$t->write_config($t->registration_config(main => <<'EOF', reg => <<"EOF"));
worker_processes 1;
worker_rlimit_nofile 8192;

events {
    worker_connections 4096;
}

EOF
tunnel_tcp_ports $range;
tunnel_tcp_address 127.0.0.1;
tunnel_heartbeat 2s;
EOF

$t->run;

my $reg = $t->port('reg');
my ($worker) = workers($t);

### 1,000 streams never read

# The raw client, in a process of its own: its stats go to a file.
my $stats = $t->testdir . '/raw.stats';
my $pid = fork() // die "fork: $!\n";

if ($pid == 0) {
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    my $r = TunnelRaw->session($reg, token => $TOKEN, timeout => 10);
    my $b = $r && $r->bind('tcp');
    my $write = sub {
        my $max = 0;
        for (values %{$r->{bytes}}) { $max = $_ if $_ > $max }
        open my $fh, '>', "$stats.tmp" or return;
        printf $fh "port %d streams %d bytes %d max %d eof %d\n",
            $b && $b->{port} // 0, scalar @{$r->{opened}},
            $r->{data_bytes} // 0, $max, $r->{eof} ? 1 : 0;
        close $fh;
        rename "$stats.tmp", $stats;
    };
    my $last = 0;
    while (!$stop && $r) {
        $r->pump(0.1) or last;
        if (time - $last > 0.2) {
            $write->();
            $last = time;
        }
    }
    $write->() if $r;
    POSIX::_exit(0);
}

my $stat = sub {
    my $s = $t->read_file('raw.stats');
    my %h = $s =~ /(\w+) (\d+)/g;
    return \%h;
};

$t->wait_for_file_match('raw.stats', qr/port [1-9]/, 10);
my $port = $stat->()->{port};
ok($port, "a raw client that never gives window back has port $port");

sleep 0.5;
my $rss0 = vm_rss($worker);

my @pub;
for (1 .. $STREAMS) {
    my $s = connect_tcp($port) or last;
    $s->blocking(0);
    push @pub, $s;
}
is(scalar @pub, $STREAMS, "$STREAMS public connections");

# Pushes $size bytes into each of @pub, as far as the kernel takes them,
# for $timeout seconds at most: returns what it pushed, and the worker's
# highest VmRSS meanwhile (from $peak).
my $push = sub {
    my ($size, $timeout, $peak) = @_;
    my $data = 'z' x $size;
    my %left = map { $_ => $size } 0 .. $#pub;
    my ($pushed, $idle, $deadline) = (0, 0, time + $timeout);

    while (%left && time < $deadline && $idle < 20) {
        my $moved = 0;
        for my $i (keys %left) {
            my $n = syswrite($pub[$i], $data, $left{$i});
            next unless $n;
            $moved += $n;
            $left{$i} -= $n;
            delete $left{$i} if $left{$i} == 0;
        }
        $pushed += $moved;
        my $rss = vm_rss($worker);
        $peak = $rss if $rss > $peak;
        $idle = $moved ? 0 : $idle + 1;
        sleep 0.1 unless $moved;
    }

    return ($pushed, $peak);
};

local $SIG{PIPE} = 'IGNORE';

# push $PUSH bytes into each
my ($pushed, $peak) = $push->($PUSH, 60, $rss0);

# until the raw client has had all that the windows let through
my $want = $STREAMS * $WINDOW;
my $st;
for (1 .. 300) {
    $st = $stat->();
    last if $st->{streams} >= $STREAMS && $st->{bytes} >= $want;
    my $rss = vm_rss($worker);
    $peak = $rss if $rss > $peak;
    sleep 0.1;
}
sleep 1;
$st = $stat->();
my $rss1 = vm_rss($worker);
$peak = $rss1 if $rss1 > $peak;

is($st->{streams}, $STREAMS, "$STREAMS streams reached the client");
ok($pushed > $want, sprintf('public clients pushed %.0f MiB, more than the '
    . 'windows let through (%.0f MiB)', $pushed / $KiB / $KiB,
    $want / $KiB / $KiB));
is($st->{bytes}, $want, sprintf('the client got %.0f MiB: 256 KiB a stream',
    $st->{bytes} / $KiB / $KiB));
is($st->{max}, $WINDOW, '  no stream more than its window');

my $grew = $peak - $rss0;
my $line = sprintf('worker VmRSS %d KiB before, %d KiB at most with %d '
    . 'streams never read (+%d KiB, %.1f KiB a stream; a window is 256 KiB)',
    $rss0, $peak, $STREAMS, $grew, $grew / $STREAMS);
diag($line);
$t->write_file('memory-never-read.txt', "$line\n");

SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($grew, '<', 32 * $KiB,
        '  the worker holds far less than a window a stream (< 32 MiB)');
}

# the raw client leaves: every stream and its public connection goes

kill TERM => $pid;
waitpid($pid, 0);
my $gone = 0;
for my $s (@pub) {
    IO::Select->new($s)->can_read(5);
    my $n = sysread($s, my $buf, 1);
    $gone++ if defined $n ? $n == 0 : !$!{EAGAIN};
}
is($gone, $STREAMS, 'the client gone: every public connection is closed');
close $_ for @pub;

### a client that reads nothing at all

# Its socket fills; nginx's queue for it is bounded (512 KiB), and it reads
# the public connections no faster than that drains: not at all.

my $deaf = TunnelRaw->session($reg, token => $TOKEN);
my $db = $deaf && $deaf->bind('tcp');
my $dport = $db && $db->{port};
ok($dport, "a raw client that will read nothing has port $dport");
$deaf->{pong} = 0;

sleep 0.5;
my $rss4 = vm_rss($worker);

@pub = grep { $_ } map { connect_tcp($dport) } 1 .. 200;
$_->blocking(0) for @pub;
($pushed, my $peak4) = $push->(2 * $PUSH, 30, $rss4);

$grew = $peak4 - $rss4;
$line = sprintf('a client that reads nothing, 200 public connections '
    . 'pushing %.0f MiB: worker VmRSS %d KiB before, %d KiB at most '
    . '(+%d KiB)', $pushed / $KiB / $KiB, $rss4, $peak4, $grew);
diag($line);

SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($grew, '<', 16 * $KiB, '  the worker holds less than 16 MiB');
}

$deaf->close;
close $_ for @pub;

### churn

my $r = TunnelRaw->session($reg, token => $TOKEN);
my %bound;

my $churn = sub {
    my ($n) = @_;
    for my $round (1 .. $n / 100) {
        # binds that are refused, with long names
        $r->send(join '', map { data_frame(1, msg('bind',
            request_id => $_, kind => 1,
            name => ('x' x 60) . ".$_.not.under.the.domain")) } 1 .. 100);
        $r->message(5) for 1 .. 100;

        # binds of names and ports, each unbound
        $r->send(join '', map { data_frame(1, msg('bind',
            request_id => $_, kind => $_ % 2 ? 1 : 3,
            name => "churn$_")) } 1 .. 100);
        my @b = map { $r->message(5) } 1 .. 100;
        $bound{$_->{kind}}++ for grep { $_ && $_->{type} eq 'bound' } @b;
        $r->send(join '', map { data_frame(1, msg('unbind',
            tunnel_id => $_->{tunnel_id})) } grep { $_ && $_->{tunnel_id} } @b);

        # pings in bursts that the server answers in more than one go
        for (1 .. 100) {
            $r->send(frame(PING, SYN, 0, 1) x 20);
            $r->pump(0.001);
        }
    }
    $r->pump(0.2);
};

$churn->(1000);                     # warm: caches, pools at their size
my $rss2 = vm_rss($worker);
my $start = time;
$churn->(10000);
my $rss3 = vm_rss($worker);

ok(!$r->{eof}, sprintf('10,000 refused binds, 10,000 binds and unbinds, '
    . '200,000 pings in bursts of 20, on one session (%.1fs)',
    time - $start));
ok($bound{1} >= 5000 && $bound{3} >= 1000, sprintf('  (%d http and %d '
    . 'tcp tunnels were bound, then unbound)', $bound{1}, $bound{3}));

SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($rss3 - $rss2, '<', 512, sprintf('  the worker\'s VmRSS: %d KiB '
        . 'after 1,000 of each, %d KiB after 10,000 more', $rss2, $rss3));
}

ok($t->stop, 'nginx quits gracefully');
