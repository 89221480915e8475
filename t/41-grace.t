#!/usr/bin/perl

# tunnel_reconnect_grace: a client whose connection breaks (killed, or
# silent past the heartbeat) keeps its names and ports for a while.  Http
# requests get a 502 that says its client is reconnecting (error_page can
# replace it), tls connections are closed with an info line, tunnel_status
# says "reconnecting"; another token is refused, the same token takes them
# over at once; after the grace the name is gone (404).  A client that
# quits, or a server with no grace, frees its names at once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest;
use TunnelService qw(service command);
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_request
    TOKEN);

my $t = TunnelTest->new->plan(47);

my $range = $t->port_range('tcp', 4);
my $other = 'other-token-0123456789';
my $one = 'one-tunnel-token-0123456';

$t->write_config(edge_config($t,
    workers => 2,
    tcp => $range,
    registration => q{
        tunnel_reconnect_grace 5s;
        tunnel_heartbeat 1s;
},
    stream => q{
    server {                        # the same, without a grace
        listen 127.0.0.1:%%PORT_reg0%%;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
        tunnel_domain tun.test;
        tunnel_url http http://$name:%%PORT_http%%;
        tunnel_reconnect_grace 0;
    }

    server {                        # plain bytes to the tls tunnel "app"
        listen 127.0.0.1:%%PORT_app%%;
        tunnel_pass app.tun.test;
    }
},
    server => q{
        location /intercepted/ {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_intercept_errors on;
            error_page 502 @down;
        }

        location @down {
            return 502 "custom: $host is away\n";
        }
}));

# a second token, after the one edge_config writes
$t->write_file('tunnel.tokens', TOKEN . " id=tester\n$other id=other\n"
    . "$one id=one tunnels=1\n", 0600);

$t->run;

my $port = $t->port('http');
my @server = ('--server', '127.0.0.1:' . $t->port('reg'), '--plain',
    '--log-format', 'text');
my $get = sub {
    http_request($port, $_[1] // '/', host => "$_[0].tun.test")
};
my $status = sub {
    my $r = http_request($port, '/tunnels' . ($_[0] // ''),
        host => 'localhost');
    return $r ? $r->{body} : '';
};

# how many lines of error.log matched $re, and waiting for one more
my $count = sub { scalar(() = $t->error_log =~ /$_[0]/g) };
my $wait_log = sub {
    my ($re, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    sleep 0.05 while $count->($re) <= $n && time < $deadline;
    return $count->($re) > $n;
};
# a regex from pieces (a phrase over lines)
my $re = sub { my $s = join '', @_; qr/$s/m };

my $lost = $re->('\[info\] .*session \w+ lost its client: its tunnels are ',
    'kept for it for 5000 ms');

my $backend = start_backend($t, 'web');

### http: killed, reconnecting, refused to another token, taken over

start_http_tunnel($t, 'web', $backend, '--name', 'web');
my $r = $get->('web');
is($r && $r->{status}, 200, 'web.tun.test is served');

$t->kill_process('web', signal => 'KILL');
my $killed = time;
ok($wait_log->($lost, 0), 'client killed with SIGKILL: error.log says its '
    . 'tunnels are kept for it (tunnel_reconnect_grace)');

$r = $get->('web');
is($r && $r->{status}, 502, 'a request meanwhile: 502');
like($r && $r->{body}, $re->('^Tunnel web\.tun\.test is reconnecting: ',
    'its client lost its connection \d+ s ago'),
    '  "Tunnel <name> is reconnecting: its client lost its connection"')
    or diag($r && $r->{body});
like($t->error_log,
    qr/\[info\] .*tunnel_route: "web\.tun\.test" is reconnecting/,
    '  error.log says so at info');

$r = $get->('web', '/intercepted/x');
is($r && $r->{body}, "custom: web.tun.test is away\n",
    '  error_page replaces the page');

my $j = eval { decode_json($status->()) } // {};
my ($ws) = grep { grep { ($_->{name} // '') eq 'web.tun.test' }
    @{$_->{tunnels} // []} } @{$j->{sessions} // []};
is($ws && $ws->{state}, 'reconnecting', 'tunnel_status: session '
    . 'reconnecting') or diag(explain $j);
ok($ws && ($ws->{lost_since} // 0) >= int($killed) - 1,
    '  lost_since: when its connection broke');
is($ws && $ws->{tunnels}[0]{state}, 'reconnecting',
    '  its tunnel: reconnecting');
like($status->('?format=prometheus'),
    $re->('^ngx_tunnel_info\{tunnel="web\.tun\.test",[^}]*',
        'state="reconnecting"\} 1$'), '  in Prometheus too');

$t->tunnel('thief', 'http', $backend, '--name', 'web', @server,
    '--token', $other);
is($t->wait_exit('thief', 10), 1 << 8,
    'another token asks for the name meanwhile: refused, its client exits 1');
like($t->output('thief'), qr/web.*(taken|in use|held)/i,
    '  and says the name is taken');

my $took = time;
my $url = start_http_tunnel($t, 'web2', $backend, '--name', 'web');
$took = time - $took;
is($url, "http://web.tun.test:$port",
    'a new client with the same token gets the name back');
ok($took < 3, sprintf('  at once (%.1f s), before the grace ends', $took));
like($t->error_log, $re->('\[info\] .*http "web\.tun\.test" taken over by ',
    'session \w+ from session \w+, which was reconnecting'),
    '  error.log: taken over from the reconnecting session');

$r = $get->('web');
is($r && $r->{status}, 200, '  and serves it');

$j = eval { decode_json($status->()) } // {};
is(join(',', map { $_->{state} } @{$j->{sessions} // []}), 'online',
    '  tunnel_status: one session, online (the lost one is gone)')
    or diag(explain $j);

### the grace ends

my $n = $count->($lost);
$t->kill_process('web2', signal => 'KILL');
$wait_log->($lost, $n);
$killed = time;

$r = $get->('web');
is($r && $r->{status}, 502, 'killed again: 502 during the grace');

my $deadline = $killed + 10;
do {
    sleep 0.2;
    $r = $get->('web');
} until ($r && $r->{status} != 502) || time > $deadline;
is($r && $r->{status}, 404, 'after the grace: 404');
my $grace = time - $killed;
ok($grace > 4 && $grace < 8, sprintf('  about 5 s after the loss (%.1f s)',
    $grace));
ok($t->wait_for_file_match('error.log', $re->('\[info\] .*session \w+ ',
        'did not come back within tunnel_reconnect_grace, 1 tunnels ',
        'released'), 3), '  error.log says the grace ended (the reaper, '
    . 'within a second)');

$url = start_http_tunnel($t, 'thief2', $backend, '--name', 'web', @server,
    '--token', $other);
is($url, "http://web.tun.test:$port", 'then another token may have it');

### a client that quits frees its names at once

$t->kill_process('thief2');
$deadline = time + 5;
my $seen502 = 0;
do {
    $r = $get->('web');
    $seen502++ if $r && $r->{status} == 502;
} until ($r && $r->{status} == 404) || time > $deadline || !sleep 0.05;
is($r && $r->{status}, 404, 'a client that quits (SIGTERM): 404 at once');
is($seen502, 0, '  no "reconnecting" in between');

### no pong: the same as a broken connection

start_http_tunnel($t, 'hb', $backend, '--name', 'hb');
kill STOP => $t->{procs}{hb};
$n = $count->($lost);
ok($wait_log->(qr/\[info\] .*session \w+ is dead: nothing received/, 0),
    'a client that stops answering is dead after 3 heartbeats');
ok($wait_log->($lost, $n, 5), '  and its tunnels are kept for it');
$r = $get->('hb');
is($r && $r->{status}, 502, '  502 meanwhile');
kill CONT => $t->{procs}{hb};

$deadline = time + 4;
do {
    sleep 0.1;
    $r = $get->('hb');
} until ($r && $r->{status} == 200) || time > $deadline;
is($r && $r->{status}, 200, '  the same client, going on, reconnects and '
    . 'serves it again');
like($t->error_log, $re->('\[info\] .*http "hb\.tun\.test" taken over by ',
    'session \w+ from session \w+, which was reconnecting'),
    '  taking it over');

### tls by tunnel_pass

my $svc = service($t, 'svc', 'tcp', 'A');
my $app = $t->port('app');

$t->tunnel('app', 'tls', $svc, '--name', 'app', @server, '--token', TOKEN);
like($t->tunnel_url('app') // '', qr{^https://app\.tun\.test},
    'a tls tunnel');
is(command($app, 'hello', timeout => 5)->{data}, "hello from A\n",
    '  reached by tunnel_pass');

$n = $count->($lost);
$t->kill_process('app', signal => 'KILL');
$wait_log->($lost, $n);

$r = command($app, 'hello', timeout => 5);
is($r->{len}, 0, 'killed: a connection is closed at once, nothing sent')
    or diag(explain $r);
like($t->error_log, $re->('\[info\] .*tunnel_pass: tls tunnel ',
    '"app\.tun\.test" is reconnecting: its client lost its connection ',
    '\d+ ms ago, connection closed'), '  with an info line that says why');

### tcp: the port is kept for the token

$t->tunnel('tcp', 'tcp', $svc, @server, '--token', TOKEN);
my ($tport) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($tport, "a tcp tunnel on port " . ($tport // '?'));
is(command($tport, 'hello')->{data}, "hello from A\n", '  it works');

$n = $count->($lost);
$t->kill_process('tcp', signal => 'KILL');
ok($wait_log->($lost, $n), 'killed: its port is kept for it');

$t->tunnel('tcpthief', 'tcp', $svc, @server, '--token', $other,
    '--remote-port', $tport);
is($t->wait_exit('tcpthief', 10), 1 << 8,
    '  another token asks for the port: refused');
like($t->error_log,
    qr/\[info\] .*\(account "other"\) refused tcp bind .*port $tport/,
    '  error.log says so');

$t->tunnel('tcp2', 'tcp', $svc, @server, '--token', TOKEN,
    '--remote-port', $tport);
is($t->tunnel_url('tcp2'), "tcp://127.0.0.1:$tport",
    '  the same token gets it at once');
like($t->error_log, $re->("\\[info\\] .*tcp port $tport taken over by ",
    'session \w+ from session \w+, which was reconnecting'), '  taken over');
is(command($tport, 'hello')->{data}, "hello from A\n", '  and it works');

### a token at its limit: what is kept for it gives way to its own binds

my $url1 = start_http_tunnel($t, 'one', $backend, '--token', $one);
my ($label) = ($url1 // '') =~ m{^http://([a-z0-9]+)\.tun\.test:};
ok($label, 'a token with tunnels=1: a random name');

$n = $count->($lost);
$t->kill_process('one', signal => 'KILL');
$wait_log->($lost, $n);

my $url2 = start_http_tunnel($t, 'one2', $backend, '--token', $one);
like($url2 // '', qr{^http://(?!$label\.)[a-z0-9]+\.tun\.test:},
    '  killed, and started again: another random name, not refused by '
    . 'the limit');
$r = $get->($label);
is($r && $r->{status}, 404, '  the first name was let go for it');

### tunnel_reconnect_grace 0

start_http_tunnel($t, 'zero', $backend, '--name', 'zero', '--server',
    '127.0.0.1:' . $t->port('reg0'));
$r = $get->('zero');
is($r && $r->{status}, 200, 'a server with no grace: served');

$t->kill_process('zero', signal => 'KILL');
$deadline = time + 5;
$seen502 = 0;
do {
    $r = $get->('zero');
    $seen502++ if $r && $r->{status} == 502;
} until ($r && $r->{status} == 404) || time > $deadline || !sleep 0.05;
is($r && $r->{status}, 404, '  killed: 404 at once');
is($seen502, 0, '  no "reconnecting" in between');
