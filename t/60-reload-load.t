#!/usr/bin/perl

# Reload under load: wrk drives 200 connections of HTTP through a tunnel
# (4 workers) while nginx is reloaded 10 times (HUP to the master), and a
# quiet tunnel is asked every 50 ms.  Twice:
#
#  - each request on a connection of its own ("Connection: close"): not one
#    request fails, not one status but 200;
#  - keep-alive: no status but 200 and no failed connect or write; what wrk
#    counts as read errors is nginx's own doing, the same without tunnels:
#    a quitting worker closes its idle keep-alive connections, and wrk has
#    its next request on the way on each (at most once per connection and
#    reload, as RFC 9112 9.3.1 allows; browsers send such a request again).
#
# The clients keep their names (bound in the new workers before their old
# sessions give them up; a named tunnel and a random one are both served
# afterwards, by the same processes, each once in the registry); every
# generation of old workers exits, and how long that took is measured.  The
# local service is an nginx of its own, which is not reloaded.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest;
use TunnelHTTP qw(edge_config start_http_tunnel http_request);
use TunnelService qw(workers);

my $wrk = `which wrk 2>/dev/null`;
chomp $wrk;
plan(skip_all => 'wrk is not installed') unless $wrk;

my $RELOADS = 10;
my $EVERY = 1.5;                # s between reloads
my $EXIT_BOUND = 15;            # s an old generation may take to exit
my $CONNS = 200;

my $t = TunnelTest->new->plan(25);

$t->write_config(edge_config($t,
    workers => 4,
    http => q{
    log_format status '$status $pid';
},
    server => q{
        access_log %%TESTDIR%%/tunnel.log status;
}));

$t->run;

# the local service: an nginx that the reloads do not touch
my $svc = TunnelTest->new;
$svc->write_config(<<'EOF');
worker_processes 1;

events {
    worker_connections 4096;
}

http {
    server {
        listen 127.0.0.1:%%PORT_service%%;
        access_log off;
        keepalive_requests 100000;

        location = / {
            return 200 "hello from the service\n";
        }
    }
}
EOF
$svc->run;
my $service = $svc->port('service');

my $port = $t->port('http');
start_http_tunnel($t, 'web', $service);
my $rnd_url = start_http_tunnel($t, 'rnd', $service, '--plain');
my ($rnd) = ($rnd_url // '') =~ m{^http://([^:/]+)};

my $r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{body}, "hello from the service\n", 'the tunnel works');
$r = http_request($port, '/', host => $rnd // 'none');
is($r && $r->{body}, "hello from the service\n",
    "and a random name: $rnd");

my %client_pid = map { $_ => $t->{procs}{$_} } qw(web rnd);

# generations of old workers: [ HUP time, { pid => 1 }, exit time ]
my @gens;

my $watch = sub {
    my %alive = map { $_ => 1 } workers($t);
    for my $g (grep { !defined $_->[2] } @gens) {
        $g->[2] = time - $g->[0] unless grep { $alive{$_} } keys %{$g->[1]};
    }
};

# wrk (and the probe of the quiet tunnel) through $RELOADS reloads, and a
# little before and after them; returns what wrk said
sub phase {
    my ($name, @headers) = @_;
    my $duration = int(2 + $RELOADS * $EVERY + 3);

    $t->spawn("wrk-$name", $wrk, '-t2', "-c$CONNS", "-d${duration}s",
        '--timeout', '30s', '-H', 'Host: web.tun.test',
        (map { ('-H', $_) } @headers), "http://127.0.0.1:$port/");
    $t->spawn("probe-$name", $^X, "$FindBin::Bin/lib/loadgen.pl",
        '-t', $duration, '-p', 0.05, '-w', 30, 'http', $port, $rnd // 'none');

    sleep 2;

    my $hup_failed = 0;
    for my $i (1 .. $RELOADS) {
        push @gens, [ time, { map { $_ => 1 } workers($t) }, undef ];
        kill(HUP => $t->{master}) or $hup_failed++;

        my $next = time + $EVERY;
        while (time < $next) {
            $watch->();
            sleep 0.05;
        }
    }

    my $status = $t->wait_exit("wrk-$name", $duration + 60);
    $t->wait_exit("probe-$name", 60);
    my $out = $t->output("wrk-$name");

    my %w = (out => $out, status => $status, hup_failed => $hup_failed);
    ($w{requests}) = $out =~ /(\d+) requests in/;
    ($w{non2xx}) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    @w{qw(connect read write timeout)} = $out
        =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
    ($w{rps}) = $out =~ /Requests\/sec:\s+([\d.]+)/;

    my $probe = $t->read_file("probe-$name.out");
    $w{probe_ok} = () = $probe =~ /^ok /mg;
    $w{probe_fail} = [ $probe =~ /^fail (.*)$/mg ];

    return \%w;
}

sub first10 { join "\n", @_[0 .. ($#_ < 9 ? $#_ : 9)] }

# one connection per request

my $w = phase('close', 'Connection: close');

is($w->{hup_failed}, 0, "Connection: close: $RELOADS reloads signalled, "
    . "one every ${EVERY}s");
ok(defined $w->{status} && ($w->{requests} // 0) > 1000,
    "  wrk -c$CONNS across them: " . ($w->{requests} // 0) . ' requests ('
    . ($w->{rps} // 0) . '/s)') or diag($w->{out});
is($w->{non2xx} // 0, 0, '  no response other than 2xx') or diag($w->{out});
is(join(' ', map { $w->{$_} // 0 } qw(connect read write timeout)),
    '0 0 0 0', '  no socket error') or diag($w->{out});
ok($w->{probe_ok} > 100, "  the quiet tunnel: $w->{probe_ok} answers");
is(scalar @{$w->{probe_fail}}, 0, '  none failed')
    or diag(first10(@{$w->{probe_fail}}));

# keep-alive

$w = phase('keepalive');

ok(defined $w->{status} && ($w->{requests} // 0) > 1000,
    "keep-alive: wrk -c$CONNS across $RELOADS reloads: "
    . ($w->{requests} // 0) . ' requests (' . ($w->{rps} // 0) . '/s)')
    or diag($w->{out});
is($w->{non2xx} // 0, 0, '  no response other than 2xx') or diag($w->{out});
is(join(' ', map { $w->{$_} // 0 } qw(connect write timeout)), '0 0 0',
    '  no failed connect or write, no timeout') or diag($w->{out});
cmp_ok($w->{read} // 0, '<=', $CONNS * $RELOADS,
    "  $w->{read} connections closed between two requests by quitting "
    . "workers (at most $CONNS a reload)") or diag($w->{out});
ok($w->{probe_ok} > 100, "  the quiet tunnel: $w->{probe_ok} answers");
is(scalar @{$w->{probe_fail}}, 0, '  none failed')
    or diag(first10(@{$w->{probe_fail}}));

# the old workers

my $deadline = time + $EXIT_BOUND + 5;
while (time < $deadline && grep { !defined $_->[2] } @gens) {
    $watch->();
    sleep 0.05;
}

my @took = map { $_->[2] } @gens;
my @sorted = sort { $a <=> $b } grep { defined } @took;
is(scalar(grep { !defined } @took), 0,
    'every generation of old workers exited (' . @gens . ')');
cmp_ok($sorted[-1] // 0, '<', $EXIT_BOUND,
    "  within ${EXIT_BOUND}s of its reload");
diag(sprintf('old workers exited %s s after their HUP (median %.2f, max '
    . '%.2f)', join(' ', map { defined $_ ? sprintf('%.2f', $_) : 'never' }
    @took), @sorted ? $sorted[$#sorted / 2] : 0, $sorted[-1] // 0));

# what nginx logged: every request answered 200, but those wrk left
# unfinished when its time was up (499)

my @statuses = $t->read_file('tunnel.log') =~ /^(\d+) /mg;
my @bad = grep { $_ != 200 && $_ != 499 } @statuses;
my $n499 = grep { $_ == 499 } @statuses;
ok(@statuses > 2000, 'nginx logged ' . @statuses . " requests ($n499 of "
    . "them 499: cut by wrk's end)");
is(first10(@bad), '', '  all 200') or diag(scalar(@bad) . ' not 200');
cmp_ok($n499, '<=', 2 * $CONNS, '  499 only for what wrk left at its end');

# the clients kept their names, in the same processes, one session each

my $ok = 0;
for (1 .. 5) {
    $r = http_request($port, '/', host => 'web.tun.test');
    $ok++ if $r && $r->{status} == 200;
    $r = http_request($port, '/', host => $rnd // 'none');
    $ok++ if $r && $r->{status} == 200;
}
is($ok, 10, 'both names are served after the reloads');
is(join(' ', map { $t->{procs}{$_} // 'gone' } qw(web rnd)),
    join(' ', map { $client_pid{$_} } qw(web rnd)),
    '  by the same client processes');

my $j = {};
$deadline = time + 10;
while (time < $deadline) {
    $r = http_request($port, '/tunnels', host => 'localhost');
    $j = eval { decode_json($r->{body}) } // {};
    last if @{$j->{sessions} // []} == 2;
    sleep 0.2;
}
my %names;
for my $s (@{$j->{sessions} // []}) {
    $names{$_->{name}}++ for @{$s->{tunnels} // []};
}
is(scalar @{$j->{sessions} // []}, 2,
    'tunnel_status: two sessions, none left over from old workers');
is_deeply(\%names, { 'web.tun.test' => 1, $rnd // 'none' => 1 },
    '  each name bound once');

my $log = $t->error_log;
my $moved = () = $log =~ /asked to reconnect/g;
my $refused = grep { !/the server is shutting down/ }
    $log =~ /^.*refused \S+ bind.*$/mg;
ok($moved >= 4 * $RELOADS && !$refused,
    "the clients were asked to reconnect $moved times, no bind refused")
    or diag($refused);
unlike($log, qr/\[error\]/, 'no [error] in error.log')
    or diag(first10($log =~ /^.*\[error\].*$/mg));

# (now: phase() holds $t, which would be destroyed too late)
$t->_final_checks;
