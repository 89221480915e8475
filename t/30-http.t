#!/usr/bin/perl

# HTTP tunnels through nginx's upstream machinery ("tunnel_route $host" and
# proxy_pass), with the real client and a real local service: GET and POST
# of 10 MiB bodies checked by hash both ways, a chunked upload,
# X-Forwarded-For reaching the service, and the tunnel variables in a
# log_format.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_request);

my $t = TunnelTest->new->plan(26);

$t->write_config(edge_config($t,
    workers => 2,
    http => q{
    log_format tunnel '$host name=$tunnel_name id=$tunnel_id '
                      'session=$tunnel_session client=$tunnel_client_addr '
                      '$status $upstream_addr worker=$pid';
    client_max_body_size 64m;
},
    server => q{
        access_log %%TESTDIR%%/tunnel.log tunnel;

        # proxy_pass alone: HTTP/1.0 and Connection: close to the tunnel
        location /plain/ {
            proxy_pass http://tunnels/;
        }

        # bodies streamed both ways, nothing buffered by nginx
        location /unbuffered/ {
            proxy_pass http://tunnels/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
}));

$t->run;

my $backend = start_backend($t, 'web');
my $url = start_http_tunnel($t, 'web', $backend);
my $port = $t->port('http');

like($url // '', qr{^http://web\.tun\.test:$port/?$},
    'the client is given http://<name>.<tunnel_domain>:<port>');

my $r = http_request($port, '/hello', host => 'web.tun.test');
is($r && $r->{status}, 200, 'GET through the tunnel: 200');
is($r && $r->{body}, "hello from web: GET /hello\n",
    '  with the local service\'s answer');

# 10 MiB from the service: the hash it sent must match what arrived
$r = http_request($port, '/data/10485760', host => 'web.tun.test',
    timeout => 60);
is($r && length $r->{body}, 10485760, 'GET 10 MiB: every byte arrives');
is($r && sha256_hex($r->{body}), $r && $r->{headers}{'x-sha256'},
    '  and their SHA-256 is the one the service sent');

# 10 MiB to the service
my $body = join '', map { pack 'N', int rand 2**32 } 1 .. 2621440;
$r = http_request($port, '/upload', host => 'web.tun.test',
    method => 'POST', body => $body, timeout => 60);
is($r && $r->{status}, 200, 'POST 10 MiB: 200');
is($r && $r->{body}, 'len=10485760 sha256=' . sha256_hex($body) . "\n",
    '  and the service got every byte, in order');

# proxy_pass with nothing else: HTTP/1.0 upstream, a stream per request
$r = http_request($port, '/plain/data/1048576', host => 'web.tun.test');
ok($r && length $r->{body} == 1048576
    && sha256_hex($r->{body}) eq $r->{headers}{'x-sha256'},
    'proxy_pass alone (HTTP/1.0 to the tunnel): GET 1 MiB');
$r = http_request($port, '/plain/upload', host => 'web.tun.test',
    method => 'POST', body => substr($body, 0, 1048576));
is($r && $r->{body}, 'len=1048576 sha256='
    . sha256_hex(substr($body, 0, 1048576)) . "\n",
    '  and POST 1 MiB');

# the same, with proxy_buffering and proxy_request_buffering off
$r = http_request($port, '/unbuffered/data/10485760', host => 'web.tun.test',
    timeout => 60);
ok($r && length $r->{body} == 10485760
    && sha256_hex($r->{body}) eq $r->{headers}{'x-sha256'},
    'GET 10 MiB, proxy_buffering off: every byte, in order');
$r = http_request($port, '/unbuffered/upload', host => 'web.tun.test',
    method => 'POST', body => $body, timeout => 60);
is($r && $r->{body}, 'len=10485760 sha256=' . sha256_hex($body) . "\n",
    'POST 10 MiB, proxy_request_buffering off: every byte, in order');

# a chunked upload of 1 MiB, in 64 KiB chunks
my $part = substr($body, 0, 1048576);
my $chunked = join('', map { sprintf("%x\r\n%s\r\n", 65536,
    substr($part, $_ * 65536, 65536)) } 0 .. 15) . "0\r\n\r\n";
$r = http_request($port, '/upload', host => 'web.tun.test',
    method => 'POST', headers => "Transfer-Encoding: chunked\r\n",
    body => $chunked, timeout => 60);
is($r && $r->{body}, 'len=1048576 sha256=' . sha256_hex($part) . "\n",
    'a chunked upload arrives whole');

# what the service sees of the public request
$r = http_request($port, '/headers', host => 'web.tun.test',
    headers => "X-Forwarded-For: 203.0.113.7\r\nX-Custom: kept\r\n");
like($r && $r->{body}, qr/^X-Forwarded-For: 203\.0\.113\.7, 127\.0\.0\.1\r$/mi,
    'X-Forwarded-For reaches the service, with the public client added');
like($r && $r->{body}, qr/^Host: web\.tun\.test\r$/mi,
    '  Host is the public name');
like($r && $r->{body}, qr/^X-Custom: kept\r$/mi, '  other headers pass');

# names are matched without case, port or trailing dot
$r = http_request($port, '/case', host => 'WEB.Tun.Test.:' . $port);
is($r && $r->{body}, "hello from web: GET /case\n",
    'Host in capitals, with a trailing dot and a port, finds the tunnel');

# a HEAD has no body, and must not leave the kept connection confused
$r = http_request($port, '/head', host => 'web.tun.test', method => 'HEAD');
is($r && $r->{status}, 200, 'HEAD through the tunnel');
$r = http_request($port, '/after-head', host => 'web.tun.test');
is($r && $r->{body}, "hello from web: GET /after-head\n",
    '  and the next request is answered correctly');

# the variables, in the access log
my $line = $t->wait_for_file_match('tunnel.log',
    qr{^(web\.tun\.test name=\S+ id=\S+ session=\S+ client=\S+ 200 \S+) }m);
like($line // '', qr/ name=web\.tun\.test /, '$tunnel_name in a log_format');
like($line // '', qr/ id=\d+ /, '$tunnel_id is a number');
like($line // '', qr/ session=[0-9a-f]{16} /,
    '$tunnel_session is the session id');
like($line // '', qr/ client=127\.0\.0\.1 /,
    '$tunnel_client_addr is the address of the tunnel client');
like($line // '', qr/ tunnel:web\.tun\.test$/,
    '$upstream_addr names the tunnel');

# more requests, each on its own connection: the kernel spreads them
my $ok = 0;
for my $i (1 .. 30) {
    $r = http_request($port, "/n$i", host => 'web.tun.test');
    $ok++ if $r && $r->{body} eq "hello from web: GET /n$i\n";
}
is($ok, 30, '30 requests on 30 connections: all answered');

# with two workers and reuseport, both served requests: one through the
# session it holds, the other handing them over
my %workers = map { $_ => 1 } $t->read_file('tunnel.log') =~ /worker=(\d+)/g;
is(scalar keys %workers, 2, 'requests were served by both workers');

# the log line of an unknown name has no tunnel variables
http_request($port, '/', host => 'nobody.tun.test');
like($t->wait_for_file_match('tunnel.log',
        qr{^(nobody\.tun\.test .*)$}m) // '',
    qr/^nobody\.tun\.test name=- id=- session=- client=- 404 /,
    'no tunnel: the variables are empty');
