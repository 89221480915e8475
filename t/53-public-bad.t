#!/usr/bin/perl

# Bad input on the public side, a "ssl_preread on; tunnel_pass
# $ssl_preread_server_name;" server: ClientHellos without a server name, or
# with one that is malformed (not a host name type, lengths that lie, cut
# short, too long, control characters, a NUL that hides a tunnel's name),
# records too long for the preread buffer, bytes that are not TLS, and
# connections that send nothing (closed by preread_timeout).  Each is closed
# with a line at info (no line of error.log forged by a name), while a TLS
# tunnel keeps serving, and the worker never dies.  (t/21-sni.t has an
# unknown name, no name at all, and plain HTTP.)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service make_cert connect_tcp workers);
use TunnelRaw qw(client_hello probe_start probe_ok);

my $t = TunnelTest->new->plan(39);

my ($crt, $key) = make_cert($t, 'app.tun.test');

$t->write_config($t->registration_config(main => <<'EOF', stream => <<'EOF'));
worker_processes 1;

events {
    worker_connections 1024;
}

EOF
    server {
        listen 127.0.0.1:%%PORT_tls%% backlog=1024;
        ssl_preread on;
        preread_timeout 1s;
        tunnel_pass $ssl_preread_server_name;
    }
EOF

$t->run;

my $pub = $t->port('tls');
my @workers = workers($t);
my $svc = service($t, 'svc', 'tls', 'local', $crt, $key);

$t->tunnel('client', 'tls', $svc, '--name', 'app', '--plain',
    '--server', '127.0.0.1:' . $t->port('reg'), '--token', DEVTOKEN);
is($t->tunnel_url('client'), 'https://app.tun.test', 'a tls tunnel')
    or diag($t->output('client'));

my $ask = sub {
    my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1', PeerPort => $pub,
        Timeout => 3, SSL_hostname => $_[0] // 'app.tun.test',
        SSL_verify_mode => SSL_VERIFY_NONE) or return '';
    print $s "hello\n";
    my $reply = '';
    while (my $n = sysread($s, my $buf, 4096)) {
        $reply .= $buf;
    }
    return $reply;
};

is($ask->(), "hello from local\n", 'app.tun.test answers through it');
is($ask->('APP.Tun.Test.'), "hello from local\n",
    '  and as APP.Tun.Test. (case, a final dot)');

my $probe = probe_start($t, 'tls', $pub, "hello from local\n", ask => $ask);

# Sends $bytes on a new public connection; true if nginx closed it within
# $timeout seconds, without a byte back.
my $closed = sub {
    my ($bytes, $timeout) = @_;
    my $s = connect_tcp($pub) or return 0;
    syswrite($s, $bytes) if length $bytes;
    my $start = time;
    my $got = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($timeout // 3);
        while (my $n = sysread($s, my $buf, 4096)) {
            $got .= $buf;
        }
        alarm 0;
    };
    alarm 0;
    return 0 if $@ || length $got;
    return time - $start;
};

my $count = sub {
    my ($re) = @_;
    return scalar(() = $t->error_log =~ /$re/g);
};

# ClientHellos with no name, or a malformed one

my $sni = sub {
    my ($type, $name, $list_len, $name_len) = @_;
    my $entry = pack('Cn', $type, $name_len // length $name) . $name;
    return pack('n', $list_len // length $entry) . $entry;
};

for my $c (
    [ 'a ClientHello without SNI', client_hello() ],
    [ 'a ClientHello with an ALPN but no SNI',
      client_hello(ext => pack('nnn', 16, 5, 3) . pack('C', 2) . 'h2') ],
    [ 'SNI of name type 1, not host_name',
      client_hello(sni_ext => $sni->(1, 'app.tun.test')) ],
    [ 'SNI whose name is longer than its list',
      client_hello(sni_ext => $sni->(0, 'app.tun.test', 5)) ],
    [ 'SNI whose list is empty', client_hello(sni_ext => pack('n', 0)) ],
    [ 'a handshake record that is not a ClientHello',
      "\x16\x03\x01\x00\x04\x02\x00\x00\x00" ],
    [ 'bytes that are not TLS', "\x00\x01\x02 not tls at all\r\n" ],
    [ 'an SSL 2 ClientHello', "\x80\x2e\x01\x00\x02" . "\0" x 43 ])
{
    my ($what, $bytes) = @$c;
    my $took = $closed->($bytes, 3);
    ok($took, sprintf('%s: closed, nothing sent back (%.1fs)', $what,
        $took));
}

cmp_ok($count->(qr/\[info\] .*tunnel_pass: nothing to route by/), '>=', 8,
    '  each with a line in error.log: nothing to route by');

# names that no tunnel can have

my $before = $count->(qr/is not a valid server name/);

for my $c (
    [ 'SNI with a newline that would forge a line of error.log',
      "app\n2020/01/01 00:00:00 [error] 1#1: forged" ],
    [ 'SNI with a NUL after a tunnel\'s name', "app.tun.test\0.evil" ],
    [ 'SNI that is invalid UTF-8', "caf\xc3\x28.tun.test" ],
    [ 'SNI of 300 bytes', 'a' x 300 ],
    [ 'SNI of a label of 64 bytes', ('a' x 64) . '.tun.test' ],
    [ 'SNI with a space', 'app .tun.test' ])
{
    my ($what, $name) = @$c;
    my $took = $closed->(client_hello(sni => $name), 3);
    ok($took, sprintf('%s: closed (%.1fs)', $what, $took));
}

is($count->(qr/is not a valid server name/) - $before, 6,
    '  each with a line in error.log: not a valid server name');
like($t->error_log,
    qr/\[info\] .*tunnel_pass: "app\\x0a2020\/01\/01 .*forged" is not a valid server name/,
    '  the name escaped');
like($t->error_log,
    qr/\[info\] .*tunnel_pass: "app\.tun\.test\\x00\.evil" is not a valid server name/,
    '  the NUL too: it did not reach app.tun.test');
unlike($t->error_log, qr{^2020/01/01}m, '  no line of error.log was forged');

# too much, too little

my $s;
my $took = $closed->("\x16\x03\x01\xff\xff" . 'x' x 20000, 3);
ok($took, sprintf('a record longer than the preread buffer: closed '
    . '(%.1fs)', $took));
like($t->error_log, qr/\[error\] .*preread buffer full/,
    '  error.log says so (nginx\'s own line)');

$took = $closed->(substr(client_hello(sni => 'app.tun.test'), 0, 30), 4);
ok($took && $took > 0.8, sprintf('a ClientHello cut short: closed at '
    . 'preread_timeout (%.1fs)', $took));
like($t->error_log, qr/\[info\] .*tunnel_pass: no whole TLS ClientHello within preread_timeout \(30 bytes\), connection closed/,
    '  error.log says so');

$s = connect_tcp($pub);
syswrite($s, substr(client_hello(sni => 'app.tun.test'), 0, 20));
shutdown($s, 1);
ok(!sysread($s, my $buf, 10), 'a ClientHello cut short by a close: closed');
ok($t->wait_for_file_match('error.log',
        qr/\[info\] .*tunnel_pass: the client closed after 20 bytes, before a whole TLS ClientHello/,
        3),
    '  error.log says so');

$before = $count->(qr/the client sent nothing within preread_timeout/);
$took = $closed->('', 4);
ok($took && $took > 0.8, sprintf('a connection that sends nothing: closed '
    . 'at preread_timeout (%.1fs)', $took));
is($count->(qr/\[info\] .*tunnel_pass: the client sent nothing within preread_timeout/)
    - $before, 1, '  error.log says so');

$s = connect_tcp($pub);
shutdown($s, 1);
ok(!sysread($s, $buf, 10), 'a connection closed before sending anything: '
    . 'closed');
ok($t->wait_for_file_match('error.log',
        qr/\[info\] .*tunnel_pass: the client closed without sending anything/,
        3),
    '  error.log says so');

# 300 at once that send nothing

$before = $count->(qr/the client sent nothing within preread_timeout/);
my @silent = map { connect_tcp($pub) } 1 .. 300;
is(scalar(grep { defined } @silent), 300, '300 connections that send '
    . 'nothing');
my $start = time;
my $all = 0;
for my $c (grep { defined } @silent) {
    my $left = 5 - (time - $start);
    last if $left <= 0;
    my $n;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($left);
        $n = sysread($c, my $b, 10);
        alarm 0;
    };
    alarm 0;
    $all++ if !$@ && !$n;
}
is($all, 300, sprintf('  all closed at preread_timeout (%.1fs)',
    time - $start));
my $lines = 0;
for (1 .. 60) {
    $lines = $count->(qr/the client sent nothing within preread_timeout/)
        - $before;
    last if $lines >= 300;
    sleep 0.05;
}
is($lines, 300, '  each with a line in error.log');

# the tunnel went on meanwhile

probe_ok($probe, 5, 'the tls tunnel');

is($ask->(), "hello from local\n", 'and it still does');

is(join(' ', sort(workers($t))), join(' ', sort @workers),
    'the worker is the same process as at the start');

ok($t->stop, 'nginx quits gracefully');
