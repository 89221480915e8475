#!/usr/bin/perl

# Hostile clients with valid tokens, speaking the protocol by hand, on two
# workers: a token cannot take another token's name however it spells it
# (case, full name or label, a final dot, another kind), nor by claiming the
# holder's instance id, nor its tcp port; ten tokens racing for one name or
# one port get one winner; tunnels= holds against binds sent all at once,
# over several sessions at once, and counts unbinds; streams= holds against
# public connections arriving all at once, and a stream the client resets
# frees its place.  (t/22-auth.t, t/23-names.t and t/28-ports.t have the
# plain cases with the real client.)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use TunnelTest;
use TunnelService qw(service command connect_tcp workers);
use TunnelRaw qw(frame data_frame msg WINDOW RST);

my $t = TunnelTest->new->plan(33);

my $range = $t->port_range('tcp', 16);
my ($lo, $hi) = split /-/, $range;

my %tok = map { $_ => "$_-token-0123456789abcdef" }
    qw(alice bob carol dave erin), map { "racer$_" } 1 .. 10;

$t->write_config($t->registration_config(main => "worker_processes 2;\n\n",
    tokens => join('', map {
        "$tok{$_} id=$_" . ($_ eq 'carol' ? ' tunnels=2'
            : $_ eq 'erin' ? ' tunnels=1' : $_ eq 'dave' ? ' streams=3' : '')
            . "\n" } sort keys %tok),
    tcp => $range, reg => 'tunnel_heartbeat 2s;', app => 1));

$t->run;

my $reg = $t->port('reg');
my $svc = service($t, 'svc', 'tcp', 'A');

# closes a raw session, and waits until nginx has seen it go
my $close = sub {
    my ($r) = @_;
    my $id = $r->{welcome}{session_id};
    $r->close;
    $t->wait_for_file_match('error.log',
        qr/session $id closed by the client/, 10);
};

my $codes = sub {
    join ' ', map { $_ ? ($_->{type} eq 'bound' ? 'bound' : $_->{code} // '?')
        : 'none' } @_;
};

# alice holds "app" and a tcp port with the real client

$t->tunnel('alice', 'tls', $svc, '--name', 'app', '--plain',
    '--server', "127.0.0.1:$reg", '--token', $tok{alice});
$t->tunnel('alice_tcp', 'tcp', $svc, '--plain',
    '--server', "127.0.0.1:$reg", '--token', $tok{alice});
is($t->tunnel_url('alice'), 'https://app.tun.test', 'alice holds app')
    or diag($t->output('alice'));
my ($aport) = ($t->tunnel_url('alice_tcp') // '') =~ /:(\d+)$/;
ok($aport, "and tcp port $aport");

# bob, by hand

my $bob = TunnelRaw->session($reg, token => $tok{bob});
ok($bob, 'bob has a session');

for my $c (
    [ tls => 'app' ], [ tls => 'APP' ], [ tls => 'app.tun.test' ],
    [ tls => 'App.Tun.TEST' ], [ http => 'app' ], [ http => 'APP.tun.test' ])
{
    my ($kind, $name) = @$c;
    my $b = $bob->bind($kind, name => $name);
    is($codes->($b), 4, "bob binds $kind \"$name\": BIND_ERROR 4 (taken)");
}

my $b = $bob->bind('tls', name => 'app.tun.test.');
ok($b && $b->{type} eq 'bind_error',
    'bob binds "app.tun.test." (a final dot): BIND_ERROR ' . $codes->($b));

$b = $bob->bind('tcp', port => $aport);
is($codes->($b), 8, "bob binds alice's port $aport: BIND_ERROR 8 (taken)");

is(join('', map { command($t->port('app'), 'hello')->{data} // '' } 1 .. 3),
    "hello from A\n" x 3, 'app.tun.test still reaches alice\'s service');
is(command($aport, 'hello')->{data}, "hello from A\n",
    "  and port $aport too");
like($t->error_log,
    qr/\[info\] .*\(account "bob"\) refused tls bind "App\.Tun\.TEST" port 0: .*/,
    'error.log names the account and the name it was refused');

# the holder's instance id, with another token

my $alice = TunnelRaw->session($reg, token => $tok{alice},
    instance => 'instance-1');
$b = $alice && $alice->bind('tls', name => 'kept');
is($codes->($b), 'bound', 'a raw alice, instance "instance-1", binds kept');

my $thief = TunnelRaw->session($reg, token => $tok{bob},
    instance => 'instance-1');
$b = $thief && $thief->bind('tls', name => 'kept');
is($codes->($b), 4, 'bob says he is instance "instance-1" too: BIND_ERROR 4');
$alice->pump(0.3);
ok(!$alice->{eof} && !grep({ $_->{type} eq 'unbound' } @{$alice->{msgs}}),
    '  alice keeps her session and her name');
unlike($t->error_log, qr/"kept\.tun\.test" taken over/,
    '  no take-over in error.log');

# ten tokens race for one name, then for one port

my @racers = grep { $_ } map {
    TunnelRaw->session($reg, token => $tok{"racer$_"}) } 1 .. 10;
is(scalar @racers, 10, 'ten tokens, a session each, on two workers');

$_->send(data_frame(1, msg('bind', request_id => 1, kind => 2,
    name => 'prize'))) for @racers;
my @got = map { $_->message(5) } @racers;
is(join(' ', sort map { $codes->($_) } @got), '4' . ' 4' x 8 . ' bound',
    '  all bind "prize" at once: one is bound, nine get BIND_ERROR 4');

my $want = $hi == $aport ? $hi - 1 : $hi;
$_->send(data_frame(1, msg('bind', request_id => 2, kind => 3,
    port => $want))) for @racers;
@got = map { $_->message(5) } @racers;
is(join(' ', sort map { $codes->($_) } @got), '8' x 1 . ' 8' x 8 . ' bound',
    "  all bind port $want at once: one is bound, nine get BIND_ERROR 8");
is(scalar(grep { $_ && $_->{type} eq 'bound' && $_->{port} == $want } @got),
    1, "  the winner has port $want");

$_->close for @racers;

# tunnels=2: ten binds in one go

my $carol = TunnelRaw->session($reg, token => $tok{carol});
$carol->send(join '', map { data_frame(1, msg('bind', request_id => $_,
    kind => 1, name => "c$_")) } 1 .. 10);
@got = map { $carol->message(5) } 1 .. 10;
is($codes->(@got), 'bound bound' . ' 10' x 8,
    'tunnels=2: ten binds sent at once: two bound, eight BIND_ERROR 10');

# (unbound first: a session that leaves may keep its tunnels a while)
$carol->send(join '', map { data_frame(1, msg('unbind',
    tunnel_id => $_->{tunnel_id})) } grep { $_ && $_->{tunnel_id} } @got);
$close->($carol);

# tunnels=2: three sessions, four binds each, all at once

my @carols = map { TunnelRaw->session($reg, token => $tok{carol}) } 1 .. 3;
for my $i (0 .. 2) {
    $carols[$i]->send(join '', map { data_frame(1, msg('bind',
        request_id => $_, kind => 1, name => "d$i-$_")) } 1 .. 4);
}
@got = map { my $r = $_; map { $r->message(5) } 1 .. 4 } @carols;
is(scalar(grep { $_ && $_->{type} eq 'bound' } @got), 2,
    '  three sessions, four binds each, at once: two bound in all')
    or diag($codes->(@got), "\n",
        join("\n", grep { /carol/ } split /\n/, $t->error_log));
is(scalar(grep { $_ && ($_->{code} // 0) == 10 } @got), 10,
    '  ten BIND_ERROR 10');
$_->close for @carols;

# tunnels=1: an unbind gives the place back

my $erin = TunnelRaw->session($reg, token => $tok{erin});
my $e1 = $erin->bind('http', name => 'e1');
my $e2 = $erin->bind('http', name => 'e2');
$erin->send(data_frame(1, msg('unbind', tunnel_id => $e1->{tunnel_id})));
my $e3 = $erin->bind('http', name => 'e3');
my $e4 = $erin->bind('http', name => 'e4');
is($codes->($e1, $e2, $e3, $e4), 'bound 10 bound 10',
    'tunnels=1: bind, bind (refused), unbind, bind, bind (refused)');

# streams=3: eight public connections at once

my $dave = TunnelRaw->session($reg, token => $tok{dave});
$b = $dave->bind('tcp');
my $dport = $b && $b->{port};
ok($dport, "streams=3: dave has port $dport");

my @pub = map { connect_tcp($dport) } 1 .. 8;
syswrite($_, "x") for grep { $_ } @pub;
$dave->pump(1);
is(scalar @{$dave->{opened}}, 3, '  eight connections at once: three '
    . 'streams reach the client');

my $closed = 0;
for my $s (grep { $_ } @pub) {
    $s->blocking(0);
    IO::Select->new($s)->can_read(0.2);
    my $n = sysread($s, my $buf, 10);
    $closed++ if defined $n ? $n == 0 : !$!{EAGAIN};   # EOF or a reset
}
is($closed, 5, '  five are closed by nginx');
my $refusals = () = $t->error_log
    =~ /\[info\] .*account "dave" has 3 connections open, its limit: refused/g;
cmp_ok($refusals, '>=', 5, '  error.log says why, for each');

# the client resets one: a new connection gets its place

$dave->send(frame(WINDOW, RST, $dave->{opened}[0], 0));
sleep 0.3;
my $s = connect_tcp($dport);
syswrite($s, "y");
$dave->pump(1);
is(scalar @{$dave->{opened}}, 4, '  a stream reset by the client frees a '
    . 'place: a new connection reaches it');
$s = connect_tcp($dport);
syswrite($s, "z");
$dave->pump(1);
is(scalar @{$dave->{opened}}, 4, '  and only one');

ok($t->stop, 'nginx quits gracefully');
