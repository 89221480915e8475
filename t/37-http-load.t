#!/usr/bin/perl

# Concurrency: 4 workers, wrk with 200 connections through one HTTP tunnel
# (most requests accepted by workers that hand them over to the one that
# holds the session), small and 256 KiB responses: every response a 2xx,
# no socket error.  The local service is an nginx server of its own.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelHTTP qw(edge_config start_http_tunnel http_request);

my $wrk = `which wrk 2>/dev/null`;
chomp $wrk;
plan(skip_all => 'wrk is not installed') unless $wrk;

my $t = TunnelTest->new->plan(13);

mkdir $t->testdir . '/www';
$t->write_file('www/big', 'x' x 262144);
chmod 0755, $t->testdir . '/www';
chmod 0644, $t->testdir . '/www/big';

$t->write_config(edge_config($t,
    workers => 4,
    http => q{
    log_format status '$status $pid';

    # the local service
    server {
        listen 127.0.0.1:%%PORT_service%%;
        access_log off;
        root %%TESTDIR%%/www;

        location = / {
            return 200 "hello from the service\n";
        }
    }
},
    server => q{
        access_log %%TESTDIR%%/tunnel.log status;
}));

$t->run;

my $port = $t->port('http');
start_http_tunnel($t, 'web', $t->port('service'));

my $r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{body}, "hello from the service\n", 'the tunnel works');

# wrk's own timeout is 2 s: under a sanitizer on a busy machine a response
# may take longer, which is not a failure of the tunnel
for my $case (['/', 'small responses'], ['/big', '256 KiB responses']) {
    my ($uri, $what) = @$case;

    my $out = `$wrk -t2 -c200 -d3s --timeout 30s -H 'Host: web.tun.test' \\
        http://127.0.0.1:$port$uri 2>&1`;

    my ($requests) = $out =~ /(\d+) requests in/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    my ($errors) = $out =~ /Socket errors: (.*)/;

    ok(($requests // 0) > 200, "wrk -c200, $what: requests done")
        or diag($out);
    is($non2xx // 0, 0, '  no response other than 2xx') or diag($out);
    is($errors // 'none', 'none', '  no socket error') or diag($out);
}

# what nginx saw: every request of both runs answered 200, by every worker
my $log = $t->read_file('tunnel.log');
my @statuses = $log =~ /^(\d+) /mg;
my %pids = map { $_ => 1 } $log =~ / (\d+)$/mg;
ok(@statuses > 400, 'nginx logged the requests (' . @statuses . ')');
is(join(',', grep { $_ != 200 && $_ != 499 } @statuses), '',
    '  all 200');
ok((grep { $_ == 499 } @statuses) <= 400,
    '  but those wrk left unfinished when its time was up (499)');
is(scalar keys %pids, 4, '  spread over the 4 workers');

# and the tunnel still answers afterwards
$r = http_request($port, '/', host => 'web.tun.test');
is($r && $r->{body}, "hello from the service\n", 'the tunnel works after');

unlike($t->error_log, qr/\[error\]/, 'no [error] in error.log')
    or diag(join "\n", ($t->error_log =~ /^.*\[error\].*$/mg)[0 .. 5]);
