#!/usr/bin/perl

# TLS passthrough by SNI: two tls tunnels at once on one public port, each
# with its own local TLS service and certificate; the public client checks
# which certificate and which service answered.  Clients register over TLS
# (nginx's "listen ... ssl").  An unknown server name, or none, closes the
# connection with an error-log line that names it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL;
use TunnelTest;
use TunnelService qw(service make_cert connect_tcp transfer data_sha);

my $t = TunnelTest->new->plan(21);

my ($edge_crt, $edge_key) = make_cert($t, 'edge', 'IP:127.0.0.1',
    'DNS:localhost');
my ($a_crt, $a_key) = make_cert($t, 'a.example.test');
my ($b_crt, $b_key) = make_cert($t, 'b.example.test');

my $range = $t->port_range('tcp', 2);

$t->write_config($t->registration_config(domain => 0, listen => 'ssl',
    tcp => $range,
    tokens => <<'EOF', reg => <<'EOF', stream => <<'EOF'));
alicetoken-0123456789 id=alice names=a.example.test
bobtoken-0123456789ab id=bob names=b.example.test
EOF
ssl_certificate     %%TESTDIR%%/edge.crt;
ssl_certificate_key %%TESTDIR%%/edge.key;
EOF
    server {
        listen 127.0.0.1:%%PORT_tls%%;
        ssl_preread on;
        tunnel_pass $ssl_preread_server_name;
    }
EOF

$t->run;

my $reg = '127.0.0.1:' . $t->port('reg');
my $pub = $t->port('tls');

my $svc_a = service($t, 'svc_a', 'tls', 'A', $a_crt, $a_key);
my $svc_b = service($t, 'svc_b', 'tls', 'B', $b_crt, $b_key);

# one client checks the edge's certificate against its CA, one does not
$t->tunnel('a', 'tls', $svc_a, '--hostname', 'a.example.test',
    '--server', $reg, '--token', 'alicetoken-0123456789',
    '--cacert', $edge_crt);
$t->tunnel('b', 'tls', $svc_b, '--hostname', 'b.example.test',
    '--server', $reg, '--token', 'bobtoken-0123456789ab', '--insecure');

like($t->tunnel_url('a'), qr{^https://a\.example\.test\b},
    'client a registers over TLS with --cacert and gets its hostname')
    or diag($t->output('a'));
like($t->tunnel_url('b'), qr{^https://b\.example\.test\b},
    'client b registers over TLS with --insecure and gets its hostname')
    or diag($t->output('b'));

# a client that cannot verify the edge's certificate does not register
$t->tunnel('noca', 'tls', $svc_a, '--hostname', 'a.example.test',
    '--server', $reg, '--token', 'alicetoken-0123456789');
is($t->wait_exit('noca', 10), 1 << 8,
    'a client without the CA refuses the edge and exits 1, not retrying');
like($t->output('noca'), qr/certificate cannot be trusted.*--cacert/s,
    '  saying the certificate is not trusted and what to do');

sub tls_connect {
    my ($name, $ca) = @_;
    my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $pub,
        Timeout => 5,
        SSL_hostname => $name,
        $ca ? (SSL_ca_file => $ca, SSL_verifycn_name => lc $name,
               SSL_verifycn_scheme => 'http')
            : (SSL_verify_mode => SSL_VERIFY_NONE));
    return ($s, $s ? '' : IO::Socket::SSL::errstr() . " $!");
}

sub ask {
    my ($s, $line) = @_;
    print $s "$line\n";
    my $reply = '';
    while (my $n = sysread($s, my $buf, 4096)) {
        $reply .= $buf;
    }
    close $s;
    return $reply;
}

# both names at once: two handshakes done, then both used, interleaved

my ($sa, $ea) = tls_connect('a.example.test', $a_crt);
my ($sb, $eb) = tls_connect('b.example.test', $b_crt);

ok($sa, 'TLS to a.example.test through nginx, verified with A\'s CA')
    or diag($ea);
ok($sb, 'TLS to b.example.test through nginx, verified with B\'s CA')
    or diag($eb);

is($sa && $sa->peer_certificate('cn'), 'a.example.test',
    '  a.example.test shows the certificate of service A');
is($sb && $sb->peer_certificate('cn'), 'b.example.test',
    '  b.example.test shows the certificate of service B');

is($sb && ask($sb, 'hello'), "hello from B\n", 'service B answers for b');
is($sa && ask($sa, 'hello'), "hello from A\n", 'service A answers for a');

# many, alternating

my @want = map { $_ % 2 ? 'b' : 'a' } 0 .. 19;
my @socks = map { (tls_connect("$_.example.test"))[0] } @want;
my @got = map { $_ ? ask($_, 'hello') : '' } @socks;
is(join(',', map { /from (\w)/ ? lc $1 : '-' } @got), join(',', @want),
    '20 connections, alternating names, each reaches its own service');

# the server name is not case-sensitive
my ($su) = tls_connect('A.Example.TEST', $a_crt);
is($su && ask($su, 'hello'), "hello from A\n",
    'A.Example.TEST reaches a.example.test');

# unknown names

my ($sc, $ec) = tls_connect('c.example.test');
ok(!$sc, 'a TLS handshake for an unknown name fails (connection closed)');
like($t->error_log, qr/\[info\] .*no tls tunnel is online for "c\.example\.test"/,
    '  error.log names the server name');

my ($sn, $en) = tls_connect('');
ok(!$sn, 'a TLS handshake without a server name fails');
like($t->error_log, qr/\[info\] .*nothing to route by/,
    '  error.log says there was nothing to route by');

my $raw = connect_tcp($pub);
print $raw "GET / HTTP/1.0\r\n\r\n";
my $n = sysread($raw, my $buf, 100);
ok(!$n, 'plain bytes instead of TLS: closed without an answer');
close $raw;

# bulk over the TLS link, both ways at once: records read ahead, several
# at a time, on both sides, and nothing lost or reordered

my $MiB = 1024 * 1024;
my $svc_t = service($t, 'svc_t', 'tcp', 'T');
$t->tunnel('t', 'tcp', $svc_t, '--server', $reg,
    '--token', 'alicetoken-0123456789', '--cacert', $edge_crt);
my ($tport) = ($t->tunnel_url('t') // '') =~ /:(\d+)$/;
ok($tport, 'a tcp tunnel registered over TLS') or diag($t->output('t'));

my $r = transfer(connect_tcp($tport), 'echo', send => 48 * $MiB, seed => 7,
    timeout => 60);
is($r->{len}, 48 * $MiB, '  48 MiB echoed back through it, both ways at once');
is($r->{sha}, data_sha(7, 48 * $MiB), '  intact (sha256)');

ok($t->stop, 'nginx quits gracefully');
