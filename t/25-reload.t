#!/usr/bin/perl

# nginx -s reload while tunnels exist: the old workers ask their clients to
# reconnect, the clients bind the same names and ports in the new workers,
# connections open during the reload go on until they end, then the old
# workers exit.  Twice, and without an alert.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service command connect_tcp workers);

my $t = TunnelTest->new->plan(23);

my $range = $t->port_range('tcp', 10);

$t->write_config($t->registration_config(main => "worker_processes 2;\n\n",
    reg => "tunnel_tcp_ports $range;\ntunnel_tcp_address 127.0.0.1;",
    app => 1));

$t->run;

my @args = ('--plain', '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);
my $svc = service($t, 'svc', 'tcp', 'local');

$t->tunnel('named', 'tls', $svc, '--name', 'app', @args);
$t->tunnel('tcp', 'tcp', $svc, @args);

is($t->tunnel_url('named'), 'https://app.tun.test', 'a named tunnel');
my ($port) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($port, "a tcp tunnel on port $port");

my $app = $t->port('app');
my $hello = "hello from local\n";

is(command($app, 'hello')->{data}, $hello, 'the name works before reload');
is(command($port, 'hello')->{data}, $hello, 'the port works before reload');

for my $round (1, 2) {
    my %old = map { $_ => 1 } workers($t);
    my $log_before = length $t->error_log;

    # a connection open across the reload, through each tunnel
    my $held_tcp = connect_tcp($port);
    my $held_app = connect_tcp($app);
    print $held_tcp "echo\nbefore $round\n";
    print $held_app "echo\nbefore $round\n";
    my ($b1, $b2) = ('', '');
    sysread($held_tcp, $b1, 100);
    sysread($held_app, $b2, 100);
    is("$b1$b2", "before $round\n" x 2,
        "round $round: connections open before reload");

    kill HUP => $t->{master};

    # the clients have moved once both names are in a new worker's session
    my $moved = 0;
    my $deadline = time + 15;
    while (time < $deadline) {
        my $log = substr($t->error_log, $log_before);
        my %new = map { $_ => 1 } grep { !$old{$_} } workers($t);

        # (a client may land in an old worker that has not yet begun
        # to quit: it moves again then)
        my ($app_pid) = ($log =~ /.*\[info\] (\d+)#\d+: [^\n]*bound tls tunnel https:\/\/app\.tun\.test/s);
        my ($tcp_pid) = ($log =~ /.*\[info\] (\d+)#\d+: [^\n]*bound tcp tunnel \S+:$port\b/s);

        if ($app_pid && $tcp_pid && $new{$app_pid} && $new{$tcp_pid}) {
            $moved = 1;
            last;
        }
        sleep 0.1;
    }

    ok($moved, "round $round: after reload both clients bound again in the "
        . 'new workers') or diag(substr($t->error_log, $log_before));

    my $log = substr($t->error_log, $log_before);
    like($log, qr/asked to reconnect/,
        "round $round: the old sessions asked their clients to reconnect");
    like($t->read_file('named.out'), qr/reconnect/i,
        "round $round: the client says it reconnects");
    # (one that lands in an old worker just as it begins to quit has its
    # binds refused, "shutting down", and binds them in its next session)
    my @refused = grep { !/the server is shutting down/ } $log =~ /^.*refused.*$/mg;
    is(join("\n", @refused), '',
        "round $round: no bind was refused but by a quitting worker");

    is(command($app, 'hello')->{data}, $hello,
        "round $round: the name works after reload");
    is(command($port, 'hello')->{data}, $hello,
        "round $round: the port $port works after reload");

    print $held_tcp "after $round\n";
    print $held_app "after $round\n";
    ($b1, $b2) = ('', '');
    sysread($held_tcp, $b1, 100);
    sysread($held_app, $b2, 100);
    is("$b1$b2", "after $round\n" x 2,
        "round $round: the connections opened before reload still work");
    close $held_tcp;
    close $held_app;

    my $gone = 0;
    $deadline = time + 15;
    while (time < $deadline) {
        if (!grep { $old{$_} } workers($t)) {
            $gone = 1;
            last;
        }
        sleep 0.1;
    }
    ok($gone, "round $round: then the old workers exit");
}

ok($t->stop, 'nginx quits gracefully');
