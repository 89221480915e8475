#!/usr/bin/perl

# tunnel_status: every session and tunnel, with their counters, public URLs
# and states, in JSON and in Prometheus text (?format=prometheus);
# restricted with allow/deny.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_connect
    http_send http_request);

my $t = TunnelTest->new->plan(40);

$t->write_config(edge_config($t,
    workers => 2,
    server => q{
        location = /private {
            deny all;
            tunnel_status;
        }
}));

$t->run;

my $port = $t->port('http');
my $started = time;

my $web = start_backend($t, 'web');
my $api = start_backend($t, 'api');
start_http_tunnel($t, 'web', $web);
start_http_tunnel($t, 'api', $api);

# traffic on web: 100000 bytes in, 200000 bytes out (and a little more)
my $r = http_request($port, '/upload', host => 'web.tun.test',
    method => 'POST', body => 'x' x 100000);
is($r && $r->{body}, "len=100000 sha256=" . sha256_hex('x' x 100000) . "\n",
    'a POST through web');
$r = http_request($port, '/data/200000', host => 'web.tun.test');
is($r && length $r->{body}, 200000, 'a GET through web');

# a response held open on api: an open stream
my $sse = http_connect($port);
http_send($sse, '/sse', host => 'api.tun.test');
IO::Select->new($sse)->can_read(5);

$r = http_request($port, '/tunnels', host => 'localhost');
is($r && $r->{status}, 200, 'status: 200');
like($r && $r->{headers}{'content-type'} // '', qr{^application/json},
    '  application/json');

my $j = eval { decode_json($r->{body}) };
ok($j, '  valid JSON') or diag($@, $r && $r->{body});
$j //= {};

my @sessions = @{$j->{sessions} // []};
is(scalar @sessions, 2, 'two sessions');

my (%by_name, %session_of);
for my $s (@sessions) {
    for my $tn (@{$s->{tunnels} // []}) {
        $by_name{$tn->{name} // ''} = $tn;
        $session_of{$tn->{name} // ''} = $s;
    }
}

is_deeply([ sort keys %by_name ], [ 'api.tun.test', 'web.tun.test' ],
    'tunnels: api.tun.test and web.tun.test');

my $s = $session_of{'web.tun.test'} // {};
like($s->{id} // '', qr/^[0-9a-f]{16}$/, 'session: id');
like($s->{pid} // '', qr/^\d+$/, '  pid of the worker that holds it');
is($s->{account}, 'tester', '  account (id= of its token)');
like($s->{client} // '', qr{^tunnel/}, '  client name and version');
is($s->{addr}, '127.0.0.1', '  client address');
ok(($s->{since} // 0) >= int($started) - 1 && $s->{since} <= time + 1,
    '  connected since (unix time)') or diag($s->{since});
ok(JSON::PP::is_bool($s->{draining}) && !$s->{draining}, '  not draining');
is($s->{state}, 'online', '  state: online');
ok(exists $s->{lost_since} && !defined $s->{lost_since},
    '  lost_since: null (its connection never broke)');
ok(($s->{bytes_in} // 0) >= 100000, '  bytes in (from public clients)')
    or diag($s->{bytes_in});
ok(($s->{bytes_out} // 0) >= 200000, '  bytes out (to public clients)')
    or diag($s->{bytes_out});
ok(($s->{streams_total} // 0) >= 1, '  streams opened');

my $w = $by_name{'web.tun.test'} // {};
is($w->{kind}, 'http', 'tunnel: kind');
like($w->{id} // '', qr/^\d+$/, '  id');
ok(exists $w->{port} && !defined $w->{port}, '  port: null for http');
ok(($w->{bytes_in} // 0) >= 100000 && ($w->{bytes_out} // 0) >= 200000,
    '  bytes each way') or diag(explain $w);
ok(($w->{conns_total} // 0) >= 1, '  connections so far');
is($w->{url}, "http://web.tun.test:$port",
    '  url: the public URL the client was given (tunnel_url)');
is($w->{state}, 'online', '  state: online');

my $a = $by_name{'api.tun.test'} // {};
my $as = $session_of{'api.tun.test'} // {};
ok(($a->{conns} // 0) >= 1 && ($as->{streams} // 0) >= 1,
    'the response held open on api: an open connection and stream')
    or diag(explain $as);
isnt($as->{id}, $s->{id}, 'api has a session of its own');

# Prometheus
$r = http_request($port, '/tunnels?format=prometheus', host => 'localhost');
is($r && $r->{status}, 200, 'prometheus: 200');
like($r && $r->{headers}{'content-type'} // '',
    qr{^text/plain; version=0\.0\.4}, '  text/plain; version=0.0.4');

my $text = $r ? $r->{body} : '';
my $sample = qr/^[a-z_]+(?:\{(?:[a-z_]+="[^"]*",?)*\})? \d+(?:\.\d+)?$/;
my @bad = grep { !/^#/ && !/$sample/ } split /\n/, $text;
is(join("\n", @bad), '', '  every sample line is "name{labels} value"');

my %typed = map { $_ => 1 } $text =~ /^# TYPE (\S+) /mg;
my %sampled = map { $_ => 1 } $text =~ /^([a-z_]+)[{ ]/mg;
is(join(' ', grep { !$typed{$_} } sort keys %sampled), '',
    '  every metric has a TYPE');

like($text, qr/^ngx_tunnel_sessions 2$/m, '  ngx_tunnel_sessions 2');
like($text, qr/^ngx_tunnel_tunnels\{kind="http"\} 2$/m,
    '  two http tunnels');
like($text, qr/^ngx_tunnel_info\{tunnel="web\.tun\.test",kind="http",
    account="tester",url="http:\/\/web\.tun\.test:$port",
    state="online"\}\ 1$/mx,
    '  ngx_tunnel_info: the public URL and state as labels');
my ($in) = $text =~ /^ngx_tunnel_bytes_total
    \{tunnel="web\.tun\.test",[^}]*direction="in"\}\ (\d+)$/mx;
ok(($in // 0) >= 100000, '  bytes in for web.tun.test') or diag($text);

# allow/deny
$r = http_request($port, '/private', host => 'localhost');
is($r && $r->{status}, 403, 'status behind "deny all": 403');

# only GET and HEAD
$r = http_request($port, '/tunnels', host => 'localhost', method => 'POST',
    body => 'x');
is($r && $r->{status}, 405, 'POST to the status: 405');

# a client leaves: its session is gone from the status
close $sse;
$t->kill_process('api');
my $deadline = time + 5;
do {
    sleep 0.1;
    $r = http_request($port, '/tunnels', host => 'localhost');
    $j = eval { decode_json($r->{body}) } // {};
} until (@{$j->{sessions} // []} == 1) || time > $deadline;
is(scalar @{$j->{sessions} // []}, 1, 'a client left: one session');
is($j->{sessions}[0]{tunnels}[0]{name}, 'web.tun.test', '  web\'s');
