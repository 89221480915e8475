#!/usr/bin/perl

# The soak (issue 7): SOAK_SECONDS (1800) of mixed traffic through one
# nginx with the module (4 workers) and three clients, while nginx reloads
# and clients are killed and started again:
#
#   http   4 processes, one GET after the other, to an http tunnel whose
#          local service is an nginx of its own (client "web": never
#          killed, its RSS is the client's figure)
#   tls    2 processes, a TLS handshake by SNI (passthrough, certificate
#          checked) and a line back, every 50 ms (client "tls")
#   tcp    2 processes echoing 1 MiB each way at 2 MiB/s, checked by hash,
#          and one asking "hello" every 50 ms (client "tcp")
#
# Injected faults: a reload (HUP) every RELOAD_EVERY s (20); every
# KILL_EVERY s (60) the tls or the tcp client, in turn, is killed (TERM or
# KILL, in turn) and started again 1 s later.  A failure is injected when
# it involves the killed client's tunnel between its kill and 2 s after it
# bound its tunnel again; every other failure is an error, reloads
# included: they must lose nothing.
#
# Every SAMPLE_EVERY s (60, or a tenth of the run) a line: RSS of the
# workers (all of them, summed, and the master), of the clients, fds of the
# workers, sessions in tunnel_status, requests so far.  At the end: the
# figures at the start and at the end, failures by kind, errors.  Exit
# status 0 if there was no error and no alert in error.log.
#
# Everything it starts is stopped at the end, or on INT/TERM (TunnelTest
# does that).  Run through tests/soak/run.sh (make soak).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);
use TunnelTest;
use TunnelHTTP qw(edge_config http_request TOKEN);
use TunnelService qw(service make_cert vm_rss workers);

$| = 1;

my $SECONDS = $ENV{SOAK_SECONDS} // 1800;
my $RELOAD_EVERY = $ENV{RELOAD_EVERY} // 20;
my $KILL_EVERY = $ENV{KILL_EVERY} // 60;
my $SAMPLE_EVERY = $ENV{SAMPLE_EVERY}
    // ($SECONDS >= 600 ? 60 : int($SECONDS / 10) || 1);
my $LOADGEN = "$FindBin::Bin/../../t/lib/loadgen.pl";

my $t = TunnelTest->new;
my $d = $t->testdir;
my $range = $t->port_range('tcp', 4);

my ($crt, $key) = make_cert($t, 'tls.tun.test');

$t->write_config(edge_config($t, workers => 4,
    registration => qq{
        tunnel_tcp_ports $range;
        tunnel_tcp_address 127.0.0.1;
        tunnel_url tcp tcp://127.0.0.1:\$port;
},
    stream => q{
    server {
        listen 127.0.0.1:%%PORT_tls%% reuseport;
        ssl_preread on;
        tunnel_pass $ssl_preread_server_name;
    }
},
    http => q{
    log_format status '$msec $status';
},
    server => q{
        access_log %%TESTDIR%%/edge.log status;
}));
$t->run;

# the local http service: an nginx that the reloads do not touch
my $www = TunnelTest->new;
$www->write_config(<<'EOF');
worker_processes 1;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:%%PORT_service%%;
        access_log off;
        location / { return 200 "hello from the service\n"; }
    }
}
EOF
$www->run;

my $tcp_svc = service($t, 'svc-tcp', 'tcp', 'local');
my $tls_svc = service($t, 'svc-tls', 'tls', 'S', $crt, $key);

my @common = ('--server', '127.0.0.1:' . $t->port('reg'), '--token', TOKEN,
    '--plain', '--log-format', 'text');
my %client = (
    web => [ 'http', $www->port('service'), '--name', 'web' ],
    tls => [ 'tls', $tls_svc, '--name', 'tls' ],
    tcp => [ 'tcp', $tcp_svc, '--remote-port', (split /-/, $range)[0] ],
);

sub start_client {
    my ($name) = @_;
    my $skip = length $t->read_file("$name.out");
    $t->tunnel($name, @{$client{$name}}, @common);
    my $deadline = time + 15;
    while (time < $deadline) {
        return time if substr($t->read_file("$name.out"), $skip)
            =~ /\bbound\b/;
        sleep 0.05;
    }
    die "client $name did not bind:\n" . $t->read_file("$name.out")
        . $t->read_file("$name.err");
}

start_client($_) for qw(web tls tcp);
my $tcp_port = (split /-/, $range)[0];

my $port = $t->port('http');
my $r = http_request($port, '/', host => 'web.tun.test');
die "the http tunnel does not work\n" unless $r && $r->{status} == 200;

my $lasts = $SECONDS + 600;
my %gen = (
    'load-http' => [ '-c', 4, 'http', $port, 'web.tun.test' ],
    'load-tls'  => [ '-c', 2, '-p', 0.05, 'tls', $t->port('tls'),
                     'tls.tun.test', $crt ],
    'load-tcp'  => [ '-c', 2, '-r', 2097152, 'echo', $tcp_port, 1048576 ],
    'load-hello' => [ '-c', 1, '-p', 0.05, 'hello', $tcp_port ],
);
$t->spawn($_, $^X, $LOADGEN, '-t', $lasts, '-w', 30, @{$gen{$_}})
    for sort keys %gen;
my %tunnel_of = ('load-http' => 'web', 'load-tls' => 'tls',
    'load-tcp' => 'tcp', 'load-hello' => 'tcp');

# figures

sub fds {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    return scalar grep { /^\d+$/ } readdir $dh;
}

sub sample {
    my %s = (time => time);
    my @w = workers($t);
    $s{workers} = scalar @w;
    $s{worker_rss} = 0;
    $s{worker_fds} = 0;
    for my $w (@w) {
        $s{worker_rss} += vm_rss($w) // 0;
        $s{worker_fds} += fds($w);
    }
    $s{master_rss} = vm_rss($t->{master}) // 0;
    for my $c (qw(web tls tcp)) {
        $s{"rss_$c"} = vm_rss($t->{procs}{$c} // 0) // 0;
    }
    my $r = http_request($port, '/tunnels', host => 'localhost');
    my $j = eval { decode_json($r->{body}) } // {};
    $s{sessions} = scalar @{$j->{sessions} // []};
    $s{ok} = 0;
    for my $g (keys %gen) {
        $s{ok} += () = $t->read_file("$g.out") =~ /^ok /mg;
    }
    return \%s;
}

sub line {
    my ($s) = @_;
    return sprintf('%6ds  workers %d: RSS %6d KiB (master %5d), fds %4d; '
        . 'clients RSS web %5d tls %5d tcp %5d KiB; sessions %d; %d done',
        $s->{time} - $t->{soak_start}, $s->{workers}, $s->{worker_rss},
        $s->{master_rss}, $s->{worker_fds}, $s->{rss_web}, $s->{rss_tls},
        $s->{rss_tcp}, $s->{sessions}, $s->{ok});
}

print "soak: ${SECONDS}s, a reload every ${RELOAD_EVERY}s, a client killed "
    . "every ${KILL_EVERY}s, in $d\n";

sleep 5;                                # warm up
sleep 0.2 while workers($t) != 4;
$t->{soak_start} = time;
my $first = sample();
print line($first), "\n";

my $end = time + $SECONDS;
my ($next_reload, $next_kill, $next_sample) = (time + $RELOAD_EVERY,
    time + $KILL_EVERY, time + $SAMPLE_EVERY);
my ($reloads, $kills, $turn) = (0, 0, 0);
my @windows;                            # [ tunnel, from, to ]

while (time < $end) {
    if (time >= $next_reload) {
        kill HUP => $t->{master};
        $reloads++;
        $next_reload += $RELOAD_EVERY;
    }

    if (time >= $next_kill) {
        my $name = (qw(tls tcp))[$turn % 2];
        my $sig = (qw(TERM KILL))[int($turn / 2) % 2];
        $turn++;
        my $from = time;
        $t->kill_process($name, signal => $sig, timeout => 10);
        sleep 1;
        my $bound = start_client($name);
        push @windows, [ $name, $from, $bound + 2 ];
        $kills++;
        $next_kill += $KILL_EVERY;
    }

    if (time >= $next_sample) {
        print line(sample()), "\n";
        $next_sample += $SAMPLE_EVERY;
    }

    sleep 0.2;
}

# the figures at the end once no old worker is left, as at the start
my $quiet = time + 40;
sleep 0.2 while workers($t) != 4 && time < $quiet;
my $last = sample();
print line($last), "\n";

# the load stops: each process ends its try
$t->kill_process($_, signal => 'TERM', timeout => 40) for sort keys %gen;

my (%count, %failed, @errors);
for my $g (sort keys %gen) {
    my $out = $t->read_file("$g.out");
    $count{$g} = () = $out =~ /^(?:ok|fail) /mg;
    for my $f ($out =~ /^fail .*$/mg) {
        my (undef, $took, $start, $why) = split ' ', $f, 4;
        my $injected = grep { $_->[0] eq $tunnel_of{$g}
            && $start <= $_->[2] && $start + $took >= $_->[1] } @windows;
        $failed{$g}{$injected ? 'injected' : 'error'}++;
        push @errors, "$g: $f" unless $injected;
    }
}

my $log = $t->error_log;
my @alerts = $log =~ /^.*\[(?:alert|crit|emerg)\].*$/mg;

print "\nsoak: ran " . sprintf('%.0f', $last->{time} - $t->{soak_start})
    . "s, $reloads reloads, $kills clients killed and started again\n";
printf "%-12s %10s %10s %10s\n", '', 'tries', 'injected', 'errors';
for my $g (sort keys %gen) {
    printf "%-12s %10d %10d %10d\n", $g, $count{$g},
        $failed{$g}{injected} // 0, $failed{$g}{error} // 0;
}
printf "%-30s %10s %10s\n", '', 'start', 'end';
printf "%-30s %10d %10d\n", $_->[0], $first->{$_->[1]}, $last->{$_->[1]}
    for ['workers RSS, KiB (all)', 'worker_rss'],
        ['master RSS, KiB', 'master_rss'],
        ['workers fds (all)', 'worker_fds'],
        ['client web RSS, KiB', 'rss_web'],
        ['client tls RSS, KiB (restarted)', 'rss_tls'],
        ['client tcp RSS, KiB (restarted)', 'rss_tcp'],
        ['sessions', 'sessions'];
print "errors beyond those injected: " . scalar(@errors) . "\n";
print "  $_\n" for @errors[0 .. ($#errors < 19 ? $#errors : 19)];
print "alert, crit or emerg in error.log: " . scalar(@alerts) . "\n";
print "  $_\n" for @alerts[0 .. ($#alerts < 9 ? $#alerts : 9)];

$t->stop or push @alerts, 'nginx did not quit gracefully';
$www->stop;
$t->kill_process($_) for keys %{$t->{procs}};

if ($ENV{SOAK_KEEP}) {
    $t->{cleaned} = 1;                  # the directory only: all is stopped
    print "left in $d\n";
}

exit(@errors || @alerts ? 1 : 0);
