#!/usr/bin/perl

# Every worker: with worker_processes 4, a public connection accepted by any
# worker reaches the tunnel, whichever worker holds the session (the others
# hand the connection over).  200 connections at once, all served intact.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Socket qw(SHUT_WR);
use Time::HiRes qw(time);
use TunnelTest qw(DEVTOKEN);
use IO::Socket::SSL;
use TunnelService qw(service connect_tcp command workers make_cert);

my $t = TunnelTest->new->plan(15);

# reuseport spreads the public connections over the four workers
$t->write_config($t->registration_config(main => <<'EOF', stream => <<'EOF'));
worker_processes 4;

events {
    worker_connections 1024;
}

EOF
    log_format pid '$pid $status $bytes_sent';

    server {
        listen 127.0.0.1:%%PORT_app%% reuseport;
        tunnel_pass app.tun.test;
        access_log %%TESTDIR%%/public.log pid;
    }

    server {
        listen 127.0.0.1:%%PORT_tls%% reuseport;
        ssl_preread on;
        tunnel_pass $ssl_preread_server_name;
        access_log %%TESTDIR%%/tls.log pid;
    }
EOF

$t->run;

my @workers;
for (1 .. 100) {
    @workers = workers($t);
    last if @workers == 4;
    select undef, undef, undef, 0.05;
}
is(scalar @workers, 4, '4 workers');

my $svc = service($t, 'svc', 'echo');

$t->tunnel('client', 'tls', $svc, '--name', 'app', '--plain',
    '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);
is($t->tunnel_url('client'), 'https://app.tun.test', 'the tunnel is bound')
    or diag($t->output('client'));

my ($owner) = $t->error_log
    =~ /\[info\] (\d+)#\d+: .*bound tls tunnel https:\/\/app\.tun\.test/;
ok($owner && grep({ $_ == $owner } @workers),
    "worker $owner holds the session");

# 200 connections, all open before any is done; each sends 100 KiB of its
# own and must get exactly those back

my $N = 200;
my $size = 100 * 1024;
my (@socks, %want, %got, %done);

for my $i (0 .. $N - 1) {
    my $s = connect_tcp($t->port('app'), timeout => 10);
    unless ($s) {
        diag("connect $i: $!");
        next;
    }
    $s->blocking(0);
    push @socks, $s;
    my $unit = sprintf("%04d-", $i);
    $want{$s} = $unit x ($size / length $unit);
    $got{$s} = '';
}

is(scalar @socks, $N, "$N public connections open at once");

my %out = map { $_ => $want{$_} } @socks;
my $rd = IO::Select->new(@socks);
my $wr = IO::Select->new(@socks);
my $deadline = time + 60;

while ($rd->count && time < $deadline) {
    my ($r, $w) = IO::Select->select($rd, $wr->count ? $wr : undef, undef,
        0.5);

    for my $s (@{ $w // [] }) {
        my $n = syswrite($s, $out{$s}, 65536);
        next unless defined $n;
        substr($out{$s}, 0, $n) = '';
        unless (length $out{$s}) {
            shutdown($s, SHUT_WR);
            $wr->remove($s);
        }
    }

    for my $s (@{ $r // [] }) {
        my $n = sysread($s, my $buf, 65536);
        next if !defined $n && $!{EAGAIN};
        if (!$n) {
            $rd->remove($s);
            $wr->remove($s);
            $done{$s} = 1;
            next;
        }
        $got{$s} .= $buf;
    }
}

is(scalar(keys %done), $N, "all $N connections finished")
    or diag($rd->count . ' still open');
my $ok = grep { $got{$_} eq $want{$_} } @socks;
is($ok, $N, "all $N got their own 100 KiB back, intact");
close $_ for @socks;

# the accepting workers, from the access log of the public server

my $wait = time + 5;
my @lines;
while (time < $wait) {
    # (the 502 is nginx's start check, before the tunnel was there)
    @lines = grep { / 200 / } split /\n/, $t->read_file('public.log');
    last if @lines >= $N;
    select undef, undef, undef, 0.1;
}
my %by;
$by{(split ' ', $_)[0]}++ for @lines;
my $handed = $N - ($by{$owner // 0} // 0);

is(scalar @lines, $N, "$N connections logged by the accepting workers");
cmp_ok(scalar(keys %by), '>=', 2,
    'they were accepted by several workers: ' . join(', ',
        map { "$_: $by{$_}" } sort keys %by));
cmp_ok($handed, '>', 0,
    "$handed of them were accepted by other workers than the owner and "
    . 'handed over');

# TLS by SNI: what ssl_preread read goes with the connection

my ($crt, $key) = make_cert($t, 'sni.tun.test');
my $tls = service($t, 'svc_tls', 'tls', 'S', $crt, $key);
$t->tunnel('sni', 'tls', $tls, '--name', 'sni', '--plain',
    '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);
is($t->tunnel_url('sni'), 'https://sni.tun.test', 'a tls tunnel by SNI')
    or diag($t->output('sni'));

my @answers;
for (1 .. 12) {
    my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1',
        PeerPort => $t->port('tls'), Timeout => 5,
        SSL_hostname => 'sni.tun.test', SSL_ca_file => $crt,
        SSL_verifycn_name => 'sni.tun.test', SSL_verifycn_scheme => 'http');
    unless ($s) {
        push @answers, IO::Socket::SSL::errstr();
        next;
    }
    print $s "hello\n";
    my $a = '';
    while (sysread($s, my $buf, 1024)) {
        $a .= $buf;
    }
    push @answers, $a;
    close $s;
}
is(scalar(grep { $_ eq "hello from S\n" } @answers), 12,
    '12 TLS connections, verified, all answered by the service')
    or diag(explain \@answers);

my ($sni_owner) = $t->error_log
    =~ /\[info\] (\d+)#\d+: .*bound tls tunnel https:\/\/sni\.tun\.test/;
my @tls = grep { / 200 / } split /\n/, $t->read_file('tls.log');
my $tls_handed = grep { !/^$sni_owner / } @tls;
cmp_ok($tls_handed, '>', 0,
    "$tls_handed of them were handed over with the ClientHello ssl_preread "
    . 'had read');

unlike($t->error_log, qr/handed over for session .* which has ended|\[error\]/,
    'no handoff failed, no error');

# the worker holding "app" dies: the master starts another, the client
# connects again and binds "app" anew, the dead worker's sessions are reaped

$t->expect_alerts(qr/worker process $owner exited on signal 9/);
kill KILL => $owner;

my $back = 0;
$wait = time + 15;
while (time < $wait) {
    my $r = command($t->port('app'), 'hello from the other side',
        timeout => 2);
    if (($r->{data} // '') eq "hello from the other side\n") {
        $back = 1;
        last;
    }
    select undef, undef, undef, 0.2;
}
ok($back, "worker $owner killed: app.tun.test is served again");
ok($t->wait_for_file_match('error.log',
        qr/\[info\] .*reaped session \w+ of exited worker $owner/, 5),
    '  and the dead worker\'s sessions are reaped from the registry');

$t->kill_process('client');
