#!/usr/bin/perl

# Clear answers when a request cannot reach a service: 404 "Tunnel <name>
# not found" for a name no client holds (also after its client left), the
# client's 502 page when the local service is down, and error_page with
# proxy_intercept_errors replacing both.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_connect
    http_send http_response http_request);

my $t = TunnelTest->new->plan(20);

$t->write_config(edge_config($t,
    workers => 2,
    server => q{
        location /intercepted/ {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_intercept_errors on;
            error_page 404 @missing;
            error_page 502 @down;
        }

        location @missing {
            return 404 "custom: no tunnel is called $host\n";
        }

        location @down {
            return 502 "custom: $host is down\n";
        }
}));

$t->run;

my $port = $t->port('http');

# a name nobody holds
my $r = http_request($port, '/', host => 'nobody.tun.test');
is($r && $r->{status}, 404, 'unknown name: 404');
like($r && $r->{body}, qr/^Tunnel nobody\.tun\.test not found/,
    '  the page says "Tunnel <name> not found"');
like($r && $r->{headers}{'content-type'} // '', qr{^text/plain},
    '  as text/plain');

# a body sent to a name nobody holds is read and dropped, and the public
# connection stays usable
my $s = http_connect($port);
http_send($s, '/upload', host => 'nobody.tun.test', method => 'POST',
    body => 'x' x 1048576);
$r = http_response($s, timeout => 10);
is($r && $r->{status}, 404, 'POST of 1 MiB to an unknown name: 404');
http_send($s, '/again', host => 'other.tun.test');
$r = http_response($s, timeout => 10);
like($r && $r->{body}, qr/^Tunnel other\.tun\.test not found/,
    '  and the next request on that connection gets its own 404');
close $s;

# error_page replaces the 404
$r = http_request($port, '/intercepted/x', host => 'nobody.tun.test');
is($r && $r->{status}, 404, 'error_page: still 404');
is($r && $r->{body}, "custom: no tunnel is called nobody.tun.test\n",
    '  with the operator\'s page');

# a tunnel whose local service is not running: the client's 502 page
my $dead = $t->port('dead_service');
start_http_tunnel($t, 'dead', $dead);

$r = http_request($port, '/', host => 'dead.tun.test');
is($r && $r->{status}, 502, 'local service down: 502');
like($r && $r->{body}, qr/could not\s+reach the local service/,
    '  the client\'s page says the local service cannot be reached');
like($r && $r->{body}, qr/127\.0\.0\.1:$dead|:$dead\b/,
    '  and names its address');
like($r && $r->{head}, qr/^X-Tunnel-Error: local service unreachable\r$/mi,
    '  X-Tunnel-Error says why');

$r = http_request($port, '/intercepted/y', host => 'dead.tun.test');
is($r && $r->{status}, 502, 'error_page replaces the 502 page too');
is($r && $r->{body}, "custom: dead.tun.test is down\n", '  with its page');

# the service comes up: the same tunnel works, without a restart
$t->spawn('late', $^X, "$FindBin::Bin/lib/http-backend.pl", $dead, 'late',
    $t->testdir);
my $deadline = time + 10;
do {
    sleep 0.1;
    $r = http_request($port, '/up', host => 'dead.tun.test');
} until ($r && $r->{status} == 200) || time > $deadline;
is($r && $r->{body}, "hello from late: GET /up\n",
    'the service started: requests reach it');

# a tunnel whose client left: its name is free, so 404 again
my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);
$r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{status}, 200, 'a live tunnel: 200');

$t->kill_process('web');
$deadline = time + 5;
do {
    sleep 0.1;
    $r = http_request($port, '/', host => 'web.tun.test');
} until ($r && $r->{status} != 200) || time > $deadline;
is($r && $r->{status}, 404, 'its client left: 404');
like($r && $r->{body}, qr/^Tunnel web\.tun\.test not found/,
    '  Tunnel <name> not found');

# an empty Host: no tunnel name, still a clear 404 (not a 500)
$r = http_request($port, '/', host => '');
ok($r && $r->{status} =~ /^(400|404)$/, 'an empty Host: 400 or 404')
    or diag($r && $r->{status});

# names that are not under tunnel_domain, or too long, are simply unknown
$r = http_request($port, '/', host => 'a' x 63 . '.' . 'b' x 63 . '.'
    . 'c' x 63 . '.tun.test');
is($r && $r->{status}, 404, 'a long name: 404');

my @alerts = $t->error_log =~ /^.*\[error\].*$/mg;
is(join("\n", grep { !/upstream prematurely closed|no live upstreams/ }
        @alerts), '', 'no [error] in error.log for these answers');
