#!/usr/bin/perl

# Bad control messages (PROTOCOL.md §3): a message of 64 KiB, one that is
# not hello first, a second hello, unknown types, fields cut short, too
# long, twice or missing, messages only a server sends, another protocol
# version, hello strings that are not printable (invalid UTF-8, a newline
# that would forge a line of error.log).  Each ends that session with an
# ERROR message and a line at info that says what was wrong.  Names that are
# invalid UTF-8, too long or not DNS names are refused one by one
# (BIND_ERROR), the session goes on.  Meanwhile a real client's tunnel keeps
# serving and the worker never dies.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(workers);
use TunnelRaw qw(frame data_frame msg hostile_start probe_ok bystander_stop
    WINDOW SYN);

my $t = TunnelTest->new->plan(58);

my $TOKEN = DEVTOKEN;

my ($reg, $probe, $good, @workers) = hostile_start($t);

my $hello = msg('hello', version => 1, token => $TOKEN);

# The session got ERROR with $code and was closed; the log says $reason.
# (no named sub may hold $t: it must go before Test::More's last word)
my $refused = sub {
    my ($r, $code, $reason, $what) = @_;
    my $m = $r->message(3);
    my $start = time;
    ok($m && $m->{type} eq 'error' && $m->{code} == $code && $r->closed(3),
        "$what: ERROR $code, then closed") or diag(explain $m);
    my $log = $t->wait_for_file_match('error.log',
        qr/\[info\] .*$reason/, 2);
    ok(defined $log, '  error.log says why at info');
};

# a message of 64 KiB: its length is within what the format allows, but
# not what a client ever needs

my $huge = msg('hello', version => 1, token => $TOKEN, 99 => 'x' x 65000);
$huge = msg('hello', version => 1, token => $TOKEN,
    99 => 'x' x (65000 + 65535 - (length($huge) - 2)));
is(length $huge, 2 + 65535, 'a hello of 2 + 65535 bytes (most the format '
    . 'allows)');

my $r = TunnelRaw->connect($reg);
$r->send(frame(WINDOW, SYN, 1, 0) . data_frame(1, $huge));
$refused->($r, 1, qr/control message of 65535 bytes/, 'that hello');

# the same length announced, and the bytes sent slowly
$r = TunnelRaw->connect($reg);
$r->send(frame(WINDOW, SYN, 1, 0) . data_frame(1, substr($huge, 0, 3)));
$refused->($r, 1, qr/control message of 65535 bytes/,
    'the length of that hello alone');

$r = TunnelRaw->session($reg, token => $TOKEN);
$r->send(data_frame(1, msg('bind', request_id => 1, kind => 3,
    99 => 'y' x 20000)));
$refused->($r, 1, qr/control message of \d+ bytes/, 'a bind of 20 KB');

# wrong messages before or instead of hello

my @cases = (
    [ 'bind before hello',
      msg('bind', request_id => 1, kind => 3),
      qr/client sent bind before hello/ ],
    [ 'an unknown message type',
      msg(99), qr/bad control message: unknown message type 99/ ],
    [ 'a message without a type',
      "\0\0", qr/bad control message: a message without a type/ ],
    [ 'a field longer than its message',
      "\0\x06\x01\x10\x00\x09abc",
      qr/bad control message: field 16 is longer than the message/ ],
    [ 'a field cut short at the end of the message',
      "\0\x03\x01\x10\x00",
      qr/bad control message: a field cut short at the end of the message/ ],
    [ 'hello without a token',
      msg('hello', version => 1),
      qr/bad control message: hello without its 'token' field/ ],
    [ 'an integer of 9 bytes',
      msg('hello', version => ["\0" x 8 . "\1"], token => $TOKEN),
      qr/bad control message: field 'version' has 9 bytes, expected 1-8/ ],
    [ 'a field twice',
      msg('hello', version => 1, token => $TOKEN, token => $TOKEN),
      qr/bad control message: field 'token' appears twice/ ],
    [ 'a token of 513 bytes',
      msg('hello', version => 1, token => 'a' x 513),
      qr/bad control message: field 'token' has 513 bytes, at most 512/ ],
    [ 'protocol version 2',
      msg('hello', version => 2, token => $TOKEN),
      qr/client speaks protocol version 2, this server 1/, 2 ],
    [ 'a client name that is invalid UTF-8',
      msg('hello', version => 1, token => $TOKEN,
          client_name => "bad\xc3\x28\xff"),
      qr/hello with a client name or version that is not printable ASCII/ ],
    [ 'a client version with a newline',
      msg('hello', version => 1, token => $TOKEN, client_name => 'x',
          client_version => "1\n2020/01/01 00:00:00 [error] 1#1: forged"),
      qr/hello with a client name or version that is not printable ASCII/ ],
    [ 'an instance with control characters',
      msg('hello', version => 1, token => $TOKEN, instance => "\x1b[2J"),
      qr/hello with an instance that is not printable ASCII/ ],
);

for my $c (@cases) {
    my ($what, $m, $reason, $code) = @$c;
    $r = TunnelRaw->connect($reg);
    $r->send(frame(WINDOW, SYN, 1, 0) . data_frame(1, $m));
    $refused->($r, $code // 1, $reason, $what);
}

unlike($t->error_log, qr{^2020/01/01}m,
    'no line of error.log was forged by a client string');

# after hello

for my $c (
    [ 'a second hello', $hello, qr/session \w+ sent a second hello/ ],
    [ 'welcome, which only a server sends',
      msg('welcome', version => 1, session_id => 'x'),
      qr/session \w+ sent welcome, which only a server sends/ ],
    [ 'stream, which only a server sends',
      msg('stream', tunnel_id => 1, kind => 3),
      qr/session \w+ sent stream, which only a server sends/ ])
{
    my ($what, $m, $reason) = @$c;
    $r = TunnelRaw->session($reg, token => $TOKEN);
    $r->send(data_frame(1, $m));
    $refused->($r, 1, $reason, $what);
}

# names: refused one by one, the session goes on

$r = TunnelRaw->session($reg, token => $TOKEN);

for my $c (
    [ 'a name that is invalid UTF-8', "caf\xc3\x28", 6 ],
    [ 'a name with a newline', "a\n2020/01/01 [error] forged", 6 ],
    [ 'a label of 64 characters', 'a' x 64, 6 ],
    [ 'a name of 253 characters, not under tunnel_domain',
      join('.', ('a' x 62) x 4) . '.a', 5 ],
    [ 'a label that ends with a hyphen', 'abc-', 6 ],
    [ 'an empty label', 'a..tun.test', 6 ])
{
    my ($what, $name, $code) = @$c;
    my $b = $r->bind('http', name => $name);
    ok($b && $b->{type} eq 'bind_error' && $b->{code} == $code,
        "$what: BIND_ERROR $code") or diag(explain $b);
}

like($t->error_log,
    qr/\[info\] .*refused http bind "caf\\xc3\(".*not a valid DNS name/,
    '  error.log says which name, its bytes escaped');
unlike($t->error_log, qr{^2020/01/01}m,
    '  no line of error.log was forged by a name');

my $b = $r->bind('http', name => 'a' x 254);
ok($b && $b->{type} eq 'error' && $r->closed(3),
    'a name of 254 bytes (more than a message may carry): ERROR, closed');
like($t->error_log,
    qr/\[info\] .*bad control message: field 'name' has 254 bytes, at most 253/,
    '  error.log says so');

$r = TunnelRaw->session($reg, token => $TOKEN);
$b = $r->bind(9);
ok($b && $b->{type} eq 'bind_error' && $b->{code} == 11,
    'a bind of an unknown kind: BIND_ERROR 11');
$b = $r->bind('tcp', port => 70000);
ok($b && $b->{type} eq 'bind_error' && $b->{code} == 7,
    'a bind of port 70000: BIND_ERROR 7');
$r->send(data_frame(1, msg('unbind', tunnel_id => 12345)));
$b = $r->bind('http', name => 'fine');
is($b && $b->{url}, 'http://fine.tun.test',
    'after bind errors and an unbind of nothing, the session binds');

# the others went on meanwhile

probe_ok($probe, 2, 'the real tunnel');

is(bystander_stop($good), "first bound\nthen bound\n",
    'the raw session that behaves is still up, and still binds');

is(join(' ', sort(workers($t))), join(' ', sort @workers),
    'the worker is the same process as at the start');

ok($t->stop, 'nginx quits gracefully');
