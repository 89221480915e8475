#!/usr/bin/perl

# A pool: two clients with the same token bind the same name.  Requests are
# spread over both, and when one client leaves (gently, or killed) requests
# keep being answered by the other, none failing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_request);

my $t = TunnelTest->new->plan(13);

$t->write_config(edge_config($t,
    workers => 2,
    server => q{
        # a member whose service is down answers 502: try the next one
        location /next/ {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502;
        }
}));
$t->run;

my $port = $t->port('http');
my $a = start_backend($t, 'a');
my $b = start_backend($t, 'b');

my $url_a = start_http_tunnel($t, 'client_a', $a, '--name', 'web');
my $url_b = start_http_tunnel($t, 'client_b', $b, '--name', 'web');

is($url_a // '', $url_b // 'none', 'both clients bound the same name');

# which backends answer $n requests; every answer must be a good one
my $spread = sub {
    my ($n) = @_;
    my %seen;
    for my $i (1 .. $n) {
        my $r = http_request($port, "/p$i", host => 'web.tun.test');
        my $who = $r && $r->{status} == 200
            && $r->{body} =~ /^hello from (\w+): GET \/p$i\n\z/ ? $1 : 'bad';
        $seen{$who}++;
    }
    return \%seen;
};

my $seen = $spread->(40);
ok(!$seen->{bad}, '40 requests to the pool: all answered')
    or diag(explain $seen);
ok($seen->{a} && $seen->{b}, '  by both members')
    or diag(explain $seen);
ok(($seen->{a} // 0) >= 10 && ($seen->{b} // 0) >= 10,
    '  about evenly (round robin)') or diag(explain $seen);

# Requests in the background, each on a new connection, while $code runs;
# returns how many there were and how many did not get a 200 from the
# service.
my $during = sub {
    my ($code) = @_;
    my $file = $t->testdir . '/load.' . time;
    my $stop = "$file.stop";

    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        my ($n, $bad) = (0, 0);
        while (!-e $stop) {
            my $r = http_request($port, "/load", host => 'web.tun.test',
                timeout => 10);
            $n++;
            $bad++ unless $r && $r->{status} == 200
                && $r->{body} =~ /^hello from \w+: GET \/load\n\z/;
        }
        open my $fh, '>', $file;
        print $fh "$n $bad\n";
        close $fh;
        POSIX::_exit(0);
    }

    sleep 0.5;
    $code->();
    sleep 1;

    open my $fh, '>', $stop;
    close $fh;
    waitpid($pid, 0);

    my ($n, $bad) = split ' ', $t->read_file($file) || '0 -1';
    return ($n, $bad);
};

# a member leaves gently (SIGTERM: the client says go-away and finishes
# what it carries)
my ($n, $bad) = $during->(sub { $t->kill_process('client_a') });
ok($n > 20, "requests went on while client a quit ($n of them)");
is($bad, 0, '  none failed');

$seen = $spread->(20);
is_deeply($seen, { b => 20 }, 'then every request goes to client b')
    or diag(explain $seen);

# client a joins the pool again
start_http_tunnel($t, 'client_a', $a, '--name', 'web');
$seen = $spread->(20);
ok($seen->{a} && $seen->{b} && !$seen->{bad},
    'client a is back: both members answer again') or diag(explain $seen);

# a member killed outright: its session breaks, the other one serves
($n, $bad) = $during->(sub {
    $t->kill_process('client_b', signal => 'KILL');
});
ok($n > 20, "requests went on while client b was killed ($n of them)");
is($bad, 0, '  none failed');

$seen = $spread->(20);
is_deeply($seen, { a => 20 }, 'then every request goes to client a')
    or diag(explain $seen);

# a member whose local service is down: with proxy_next_upstream http_502,
# the pool's other member answers every request
start_http_tunnel($t, 'client_c', $t->port('down_service'), '--name', 'web');
my %next;
for my $i (1 .. 20) {
    my $r = http_request($port, "/next/$i", host => 'web.tun.test');
    $next{$r && $r->{status} == 200 ? $r->{headers}{'x-backend'} : 'bad'}++;
}
is_deeply(\%next, { a => 20 },
    'a member with its service down, proxy_next_upstream http_502: '
    . 'the other member answers every request') or diag(explain \%next);
$t->kill_process('client_c');

# the last member leaves: the name is free, 404
$t->kill_process('client_a');
my $deadline = time + 5;
my $r;
do {
    sleep 0.1;
    $r = http_request($port, '/', host => 'web.tun.test');
} until ($r && $r->{status} == 404) || time > $deadline;
is($r && $r->{status}, 404, 'the last member left: 404');

