#!/usr/bin/perl

# Faults, and what they leave behind (2 workers, an http and a tcp tunnel):
#
#  - the clients' connections reset in the middle of transfers (a relay
#    between the clients and nginx, told to reset everything), 6 times:
#    the transfers in flight end at once (no hang), new requests succeed
#    within 1 s, and once all is quiet nginx holds what it held before:
#    the same descriptors in each worker, two sessions and two tunnels in
#    tunnel_status, the same VmRSS give or take; the clients too;
#  - a worker killed with SIGKILL: its sessions leave the registry (taken
#    over by its clients, which reconnect to a live worker within 1 s);
#  - the local service restarting under load: the requests in flight and
#    those that came while it was down get the client's 502 page, then
#    every one succeeds again.
#
# The figures are printed with diag().

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest qw(rss_unmeasured);
use TunnelHTTP qw(edge_config start_backend http_request TOKEN);
use TunnelService qw(service command vm_rss fd_count workers);

my $LOADGEN = "$FindBin::Bin/lib/loadgen.pl";
my $CUTS = 4;

my $t = TunnelTest->new->plan(22);
my $asan = rss_unmeasured();

my $range = $t->port_range('tcp', 4);

# no idle upstream connections kept: one costs two descriptors (a
# socketpair) when the session is in the other worker and none in its own,
# and sessions land in either after a cut
$t->write_config(edge_config($t, workers => 2, tcp => $range,
    route => 'keepalive=0'));
$t->run;

my $port = $t->port('http');
my $backend = start_backend($t, 'web');
my $svc = service($t, 'svc', 'tcp', 'local');
my $relay = service($t, 'relay', 'relay', 'relay', $t->port('reg'));

my @via = ('--server', "127.0.0.1:$relay", '--token', TOKEN, '--plain',
    '--log-format', 'text');
$t->tunnel('web', 'http', $backend, '--name', 'web', @via);
$t->tunnel('tcp', 'tcp', $svc, @via);
TunnelHTTP::tunnel_url($t, 'web');
my ($tcp) = (TunnelHTTP::tunnel_url($t, 'tcp') // '') =~ /:(\d+)$/;

my $get = sub { http_request($port, $_[0] // '/', host => 'web.tun.test',
    timeout => 5) };
my $r = $get->();
is($r && $r->{status}, 200, 'an http tunnel through the relay');
is(command($tcp // 0, 'hello')->{data}, "hello from local\n",
    "a tcp tunnel through the relay, port $tcp");

sub status {
    my $r = http_request($port, '/tunnels', host => 'localhost');
    return eval { decode_json($r->{body}) } // {};
}

# the inodes of all SOCK_SEQPACKET unix sockets: in nginx, only the workers'
# handoff sockets are of that type
sub seqpacket_inodes {
    my %inode;
    open my $fh, '<', '/proc/net/unix' or return \%inode;
    <$fh>;
    while (<$fh>) {
        my @f = split;
        $inode{$f[6]} = 1 if $f[4] eq '0005';
    }
    return \%inode;
}

# a worker's handoff sockets: its listener, and the connections between
# workers, made on a first handoff and kept (one each way per pair at most)
sub handoff_fds {
    my ($pid, $seq) = @_;
    return scalar grep { (readlink($_) // '') =~ /^socket:\[(\d+)\]$/
        && $seq->{$1} } glob("/proc/$pid/fd/*");
}

# what nginx and the clients hold
sub snapshot {
    my %s;
    my @w = sort { $a <=> $b } workers($t);
    $s{workers} = join ' ', @w;
    my $seq = seqpacket_inodes();
    my @handoff = map { handoff_fds($_, $seq) } @w;
    $s{fds} = join ' ', map { fd_count($w[$_]) - $handoff[$_] } 0 .. $#w;
    $s{fds_sum} = 0;
    $s{fds_sum} += $_ for split ' ', $s{fds};
    $s{handoff} = 0;
    $s{handoff} += $_ for @handoff;
    $s{rss} = 0;
    for my $w (@w) {
        $s{rss} += vm_rss($w) // 0;
    }
    $s{client_fds} = join ' ', map { fd_count($t->{procs}{$_}) } qw(web tcp);
    $s{client_rss} = 0;
    for my $c (qw(web tcp)) {
        $s{client_rss} += vm_rss($t->{procs}{$c}) // 0;
    }

    my $j = status();
    my @sessions = @{$j->{sessions} // []};
    $s{sessions} = join ',', sort map { $_->{state} } @sessions;
    $s{tunnels} = 0;
    $s{streams} = 0;
    for my $x (@sessions) {
        $s{tunnels} += @{$x->{tunnels} // []};
        $s{streams} += $x->{streams};
    }
    $s{pids} = join ' ', sort map { $_->{pid} } @sessions;
    return \%s;
}

# what each worker's descriptors are, for a diagnosis
sub fd_list {
    return join "\n", map { my $w = $_; "worker $w: " . join ' ',
        map { readlink($_) // '?' } glob("/proc/$w/fd/*") } workers($t);
}

# the same descriptors, sessions, tunnels as $want, within $timeout s
sub settle {
    my ($want, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    my $s;
    while (1) {
        $s = snapshot();
        return $s if $s->{fds_sum} == ($want->{fds_sum} // -1)
            && $s->{client_fds} eq $want->{client_fds}
            && $s->{sessions} eq 'online,online'
            && $s->{streams} == ($want->{streams} // 0);
        return $s if time > $deadline;
        sleep 0.2;
    }
}

# the first success of each of @try after $since, tried in turn every 20 ms:
# seconds (99: none in 40 s)
sub recovery {
    my ($since, @try) = @_;
    my @took = map { undef } @try;
    while (time < $since + 40 && grep { !defined } @took) {
        for my $i (grep { !defined $took[$_] } 0 .. $#try) {
            $took[$i] = time - $since if $try[$i]->();
        }
        sleep 0.02;
    }
    return map { $_ // 99 } @took;
}

my $http_ok = sub { my $r = $get->(); $r && $r->{status} == 200 };
my $tcp_ok = sub { (command($tcp, 'hello', timeout => 2)->{data} // '')
    eq "hello from local\n" };

sub fails { my @f = $_[0] =~ /^fail .*$/mg; @f }

# the delay the client $name chose for its next try, in its output after
# $off bytes (its backoff grows with losses less than 30 s apart): seconds
sub backoff {
    my ($name, $off) = @_;
    my $deadline = time + 5;
    while (time < $deadline) {
        my ($ms) = substr($t->read_file("$name.out"), $off)
            =~ /reconnecting in (\d+) ms/;
        return $ms / 1000 if defined $ms;
        sleep 0.05;
    }
    return 0;
}

sub offsets { map { $_ => length $t->read_file("$_.out") } qw(web tcp) }

# one cut: transfers in flight, reset, back
my (@rec_http, @rec_tcp, @wait_http, @wait_tcp, @ended, $inflight_failed);

sub cut {
    my ($n) = @_;

    $t->spawn("long-$n", $^X, $LOADGEN, '-c', 2, '-n', 1, '-w', 30,
        '-r', 1048576, 'echo', $tcp, 8 * 1048576);
    $t->spawn("slow-$n", $^X, $LOADGEN, '-c', 2, '-n', 1, '-w', 30,
        'http', $port, 'web.tun.test', '/sleep/5');

    # all four in flight
    my $deadline = time + 10;
    sleep 0.1 while snapshot()->{streams} < 4 && time < $deadline;
    sleep 0.3;

    my %off = offsets();
    my $cut = time;
    kill USR2 => -$t->{procs}{relay};

    my ($h, $c) = recovery($cut, $http_ok, $tcp_ok);
    push @rec_http, $h;
    push @rec_tcp, $c;
    push @wait_http, backoff('web', $off{web});
    push @wait_tcp, backoff('tcp', $off{tcp});

    my $ended = 0;
    for my $name ("long-$n", "slow-$n") {
        $t->wait_exit($name, 20);
        $ended = time - $cut if time - $cut > $ended;
        $inflight_failed += fails($t->read_file("$name.out"));
    }
    push @ended, $ended;
}

# the first two: caches fill up, the workers connect to each other's handoff
# socket (sessions land in either worker)
cut(-1);
cut(0);
my $before = settle(snapshot(), 3);
$before = settle($before, 3);
my $before_fds = fd_list();

cut($_) for 1 .. $CUTS;

my $after = settle($before, 15);

my $max = sub { (sort { $b <=> $a } @_)[0] };
my $fmt = sub { join ' ', map { sprintf '%.2f', $_ } @_ };
my @over_http = map { $rec_http[$_] - $wait_http[$_] } 0 .. $#rec_http;
my @over_tcp = map { $rec_tcp[$_] - $wait_tcp[$_] } 0 .. $#rec_tcp;
diag('after a reset: http served again in ' . $fmt->(@rec_http)
    . ' s (the client waited ' . $fmt->(@wait_http) . ' s before it '
    . 'reconnected), tcp in ' . $fmt->(@rec_tcp) . ' s (waited '
    . $fmt->(@wait_tcp) . ' s); transfers in flight ended '
    . $fmt->(@ended) . ' s after it');
cmp_ok($rec_http[0], '<', 1, 'connections reset: http served again within '
    . sprintf('%.2f s', $rec_http[0]));
cmp_ok($rec_tcp[0], '<', 1, '  tcp within ' . sprintf('%.2f s',
    $rec_tcp[0]));
cmp_ok($max->(@over_http, @over_tcp), '<', 1, "  and within 1 s of the "
    . "client's try each of $CUTS more times (its backoff grows when "
    . 'losses come less than 30 s apart)');
cmp_ok($max->(@ended), '<', 5,
    '  the transfers in flight ended at once, none hung');
is($inflight_failed, 4 * ($CUTS + 2), '  (all of them cut: '
    . "$inflight_failed)");

diag("before: worker fds $before->{fds}, RSS $before->{rss} KiB; clients' "
    . "fds $before->{client_fds}, RSS $before->{client_rss} KiB");
diag("after:  worker fds $after->{fds}, RSS $after->{rss} KiB; clients' "
    . "fds $after->{client_fds}, RSS $after->{client_rss} KiB");
is($after->{workers}, $before->{workers}, 'the same workers');
# 2 workers: 2 listeners, and a connection each way (2 descriptors each)
my $handoff_max = 2 + 2 * 2;
ok($after->{fds_sum} == $before->{fds_sum}
    && $after->{handoff} <= $handoff_max,
    '  they hold as many descriptors in all '
    . "($before->{fds_sum}; by worker: $before->{fds}, then $after->{fds}: "
    . 'the sessions land in either), and no more handoff sockets than '
    . "$handoff_max ($before->{handoff}, then $after->{handoff})")
    or diag("before:\n$before_fds\nafter:\n" . fd_list());
is("$after->{sessions} $after->{tunnels} $after->{streams}",
    "online,online 2 $before->{streams}", '  tunnel_status: two sessions, '
    . 'online, two tunnels, the same streams open (idle keep-alive ones: '
    . "$before->{streams})");
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($after->{rss} - $before->{rss}, '<', 1024,
        '  the workers\' VmRSS grew by less than 1 MiB: '
        . ($after->{rss} - $before->{rss}) . ' KiB');
}
is($after->{client_fds}, $before->{client_fds},
    'the clients hold the same descriptors');
SKIP: {
    skip $asan, 1 if $asan;
    cmp_ok($after->{client_rss} - $before->{client_rss}, '<', 512,
        '  and their VmRSS grew by less than 512 KiB: '
        . ($after->{client_rss} - $before->{client_rss}) . ' KiB');
}

### a worker killed

my $j = status();
my ($web) = grep { ($_->{tunnels}[0]{name} // '') eq 'web.tun.test' }
    @{$j->{sessions} // []};
my $victim = $web ? $web->{pid} : 0;
my %client = map { $_ => $t->{procs}{$_} } qw(web tcp);

$t->expect_alerts(qr/worker process $victim exited on signal 9/);
my %off = offsets();
my $killed = time;
kill KILL => $victim;

my ($back, $back_tcp) = recovery($killed, $http_ok, $tcp_ok);
my $waited = backoff('web', $off{web});
diag(sprintf('worker %d killed: http served again in %.2f s (the client '
    . 'waited %.2f s), tcp in %.2f s', $victim, $back, $waited, $back_tcp));
cmp_ok($back - $waited, '<', 1, "worker $victim (holding web) killed: web "
    . "served again within 1 s of the client's try");
cmp_ok($back_tcp, '<', 40, '  the tcp tunnel served too');

my $s = settle({ fds => '', client_fds => '' }, 5);
my %live = map { $_ => 1 } workers($t);
ok(!$live{$victim} && scalar(keys %live) == 2,
    '  the master started another worker');
is("$s->{sessions} $s->{tunnels}", 'online,online 2',
    '  tunnel_status: two sessions online, two tunnels');
ok(!grep({ $_ == $victim || !$live{$_} } split ' ', $s->{pids}),
    '  none in the dead worker') or diag($s->{pids});
is(join(' ', map { $t->{procs}{$_} // 'gone' } qw(web tcp)),
    join(' ', map { $client{$_} } qw(web tcp)),
    '  the same client processes, reconnected');

### the local service restarting

$t->spawn('load', $^X, $LOADGEN, '-c', 4, '-t', 6, '-w', 10,
    'http', $port, 'web.tun.test', '/sleep/0.2');
sleep 1.5;
my $down = time;
$t->kill_process('backend-web');
sleep 1;
my $up = time;
start_backend($t, 'web');
my $started = time;
$t->wait_exit('load', 30);

my $load = $t->read_file('load.out');
my $ok = () = $load =~ /^ok /mg;
my @fail = fails($load);
my @late = grep { (split ' ', $_)[2] > $started + 0.3 } @fail;
my @early = grep { (split ' ', $_)[2] + (split ' ', $_)[1] < $down } @fail;
my @page = grep { /status 502 \(local service unreachable\)$/ } @fail;
diag(sprintf('local service down for %.2f s: %d requests served, %d '
    . 'failed (%d with the client\'s 502 page)', $started - $down, $ok,
    scalar @fail, scalar @page));
ok($ok > 20 && @fail, "the local service restarted under load: $ok "
    . 'requests served, ' . @fail . ' failed');
# a 502 page from the client when the dial fails; from nginx when the
# service dies with the request in flight (a connection it had accepted,
# or only the kernel had, is reset before any answer)
my @bad = grep { !/status 502\b/ } @fail;
is(scalar @bad, 0, '  each a 502 (' . @page . ' of them the client\'s page)')
    or diag(join "\n", @bad);
is(scalar(@early) + scalar(@late), 0, '  none that ended before it went '
    . 'down, none that began after it was back')
    or diag(join "\n", @early, @late);

# (now: the subs above hold $t, which would be destroyed too late)
$t->_final_checks;
