#!/usr/bin/perl

# examples/nginx.conf works as it says: the edge it describes, on test
# ports, with certificates made here.  Clients register over TLS (verified
# against the test CA); an http tunnel answers on the http port and, with
# TLS ended by the wildcard certificate, on the shared TLS port; a tls
# tunnel on that same port gets the connection passed through by SNI, its
# own certificate and all; a tcp tunnel gets a port of the range; the status
# server lists them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::IP;
use IO::Socket::SSL;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use TunnelTest qw(request);
use TunnelHTTP qw(start_backend tunnel_url http_request http_send
    http_response);

my $t = TunnelTest->new->plan(19);
my $d = $t->testdir;

# certificates: a CA, the edge (registration port), the wildcard for
# *.tun.localhost, and the laptop's own for the passthrough name
my $openssl = sub {
    system("cd $d && openssl @_ >>openssl.log 2>&1") == 0
        or die "openssl @_ failed:\n" . $t->read_file('openssl.log');
};

$openssl->('req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test CA"'
    . ' -keyout ca.key -out ca.crt');
for (['edge', 'localhost', 'DNS:localhost,IP:127.0.0.1'],
     ['wildcard', '*.tun.localhost', 'DNS:*.tun.localhost'],
     ['api', 'api.example.test', 'DNS:api.example.test'])
{
    my ($name, $cn, $san) = @$_;
    $t->write_file("$name.ext", "subjectAltName=$san\n");
    $openssl->("req -newkey rsa:2048 -nodes -subj '/CN=$cn'"
        . " -keyout $name.key -out $name.csr");
    $openssl->("x509 -req -in $name.csr -CA ca.crt -CAkey ca.key"
        . " -CAcreateserial -days 2 -extfile $name.ext -out $name.crt");
}
chmod 0644, map { "$d/$_" } qw(edge.key wildcard.key api.key);

my $token = 'example-token-0123456789';
$t->write_file('tunnel.tokens',
    "$token id=demo names=*.tun.localhost,api.example.test\n", 0600);

# examples/nginx.conf, on the test's ports; the harness gives the
# load_module, pid and error_log lines itself
my $conf = $t->read_file("$FindBin::Bin/../examples/nginx.conf");
my $range = $t->port_range('tcp', 10);
my %port = (4443 => 'reg', 8080 => 'http', 8081 => 'status',
    8443 => 'tls', 8444 => 'https', 8445 => 'passthrough');

ok($conf =~ s/^load_module .*\n//mg == 2, 'example: two load_module lines');
ok($conf =~ s/^(pid|error_log) .*\n//mg == 2, 'example: pid and error_log');
$conf =~ s/^worker_processes auto;/worker_processes 2;/m;
$conf =~ s/\b(4443|8080|8081|8443|8444|8445)\b(?=[;\/\s])/%%PORT_$port{$1}%%/g;
$conf =~ s/\b30000-30099\b/$range/g;
$conf =~ s/(ssl_certificate(?:_key)?|tunnel_tokens)(\s+)(\S+);/$1$2$d\/$3;/g;
$t->write_config($conf);

my ($ok, $out) = $t->test_config;
ok($ok, 'nginx -t accepts the example') or diag($out);

$t->run;

my @client = ('--server', '127.0.0.1:' . $t->port('reg'), '--token', $token,
    '--cacert', "$d/ca.crt", '--log-format', 'text');

# an http tunnel
my $web = start_backend($t, 'web');
$t->tunnel('web', 'http', $web, '--name', 'demo', @client);
my $url = tunnel_url($t, 'web');
is($url, 'http://demo.tun.localhost:' . $t->port('http'),
    'http tunnel over a verified TLS registration: its URL');

my $r = http_request($t->port('http'), '/plain', host => 'demo.tun.localhost');
is($r && $r->{body}, "hello from web: GET /plain\n",
    'http://demo.tun.localhost: answered');

# https to the same tunnel, through the shared TLS port: the wildcard
# certificate, TLS ended at the edge
# (from 127.0.0.2, to tell the public client from the edge's own hops)
my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', LocalAddr => '127.0.0.2',
    PeerPort => $t->port('tls'), SSL_hostname => 'demo.tun.localhost',
    SSL_verifycn_name => 'demo.tun.localhost', SSL_verifycn_scheme => 'http',
    SSL_ca_file => "$d/ca.crt", Timeout => 5);
ok($s, 'https://demo.tun.localhost on the shared port: the handshake verifies')
    or diag($SSL_ERROR);

SKIP: {
    skip 'no TLS connection', 4 unless $s;
    like($s->peer_certificate('cn'), qr/^\*\.tun\.localhost$/,
        '  with the wildcard certificate');
    http_send($s, '/headers', host => 'demo.tun.localhost');
    $r = http_response($s, timeout => 10);
    is($r && $r->{status}, 200, '  a request through it: 200');
    like($r && $r->{body}, qr/^X-Forwarded-Proto: https\r$/mi,
        '  the service sees X-Forwarded-Proto: https');
    like($r && $r->{body}, qr/^X-Forwarded-For: 127\.0\.0\.2\r$/mi,
        '  and the public client\'s address in X-Forwarded-For');
}

# a tls tunnel: passed through by SNI, the laptop's certificate
my $tls = $t->port('api_service');
$t->spawn('api_service', 'openssl', 's_server', '-accept', $tls,
    '-cert', "$d/api.crt", '-key', "$d/api.key", '-www', '-quiet');
my $deadline = time + 10;
sleep 0.1 until IO::Socket::IP->new(PeerHost => '127.0.0.1',
    PeerPort => $tls) || time > $deadline;
$t->tunnel('api', 'tls', $tls, '--hostname', 'api.example.test', @client,
    '--log-level', 'debug');
$url = tunnel_url($t, 'api');
is($url, 'https://api.example.test:' . $t->port('tls'),
    'tls tunnel: its URL is on the shared port');

$s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', LocalAddr => '127.0.0.2',
    PeerPort => $t->port('tls'), SSL_hostname => 'api.example.test',
    SSL_verifycn_name => 'api.example.test', SSL_verifycn_scheme => 'http',
    SSL_ca_file => "$d/ca.crt", Timeout => 5);
ok($s, 'https://api.example.test on the shared port: the handshake verifies')
    or diag($SSL_ERROR);

SKIP: {
    skip 'no TLS connection', 2 unless $s;
    is($s->peer_certificate('cn'), 'api.example.test',
        '  with the service\'s own certificate (passed through)');
    print $s "GET / HTTP/1.0\r\n\r\n";
    my $reply = join '', <$s>;
    like($reply, qr{^HTTP/1\.0 200 ok}i, '  and the service answers');
}

ok($t->wait_for_file_match('api.out', qr/from 127\.0\.0\.2:\d+/, 5),
    '  the client is told the public client\'s address')
    or diag($t->read_file('api.out'));

# a name under the wildcard nobody holds: TLS at the edge, then 404
$s = IO::Socket::SSL->new(PeerHost => '127.0.0.1',
    PeerPort => $t->port('tls'), SSL_hostname => 'nobody.tun.localhost',
    SSL_ca_file => "$d/ca.crt", SSL_verify_mode => SSL_VERIFY_NONE,
    Timeout => 5);
if ($s) {
    http_send($s, '/', host => 'nobody.tun.localhost');
    $r = http_response($s, timeout => 10);
}
is($s && $r && $r->{status}, 404, 'https to an unknown name: 404');

# a tcp tunnel: a port of the range
$t->tunnel('tcp', 'tcp', $web, @client);
$url = tunnel_url($t, 'tcp');
my ($lo, $hi) = split /-/, $range;
my ($tcp_port) = ($url // '') =~ m{^tcp://127\.0\.0\.1:(\d+)$};
ok($tcp_port && $tcp_port >= $lo && $tcp_port <= $hi,
    "tcp tunnel: a port of $range") or diag($url);
like(request($tcp_port // 1, "GET /tcp HTTP/1.0\r\n\r\n") // '',
    qr{hello from web: GET /tcp}, '  the service answers there');

# the status server
$r = http_request($t->port('status'), '/tunnels', host => 'localhost');
my $j = eval { decode_json($r->{body}) } // {};
my @names = sort map { $_->{name} // $_->{port} }
    map { @{$_->{tunnels}} } @{$j->{sessions} // []};
is_deeply(\@names, [ $tcp_port // 0, 'api.example.test', 'demo.tun.localhost' ],
    'the status lists the three tunnels') or diag($r && $r->{body});
