#!/usr/bin/perl

# The client's life: several tunnels from a config file in one session;
# the server stopped, killed and started again while the client runs (it
# reconnects and gets the very same names and ports back); SIGTERM with a
# connection open (it is served to its end, then the client exits 0).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelService qw(service command connect_tcp transfer workers);
use Time::HiRes qw(time sleep);

my $t = TunnelTest->new->plan(21);

my $range = $t->port_range('tcp', 10);
my ($lo) = $range =~ /^(\d+)/;

$t->write_config($t->registration_config(tcp => $range,
    tokens => "clienttoken-0123456789 id=dev\n", reg => 'tunnel_heartbeat 1s;',
    stream => <<'EOF'));
    server {
        listen 127.0.0.1:%%PORT_public%%;
        tunnel_pass app.tun.test tls;
    }
EOF

my $svc = service($t, 'svc', 'tcp', 'local');

$t->write_file('tunnel.conf', <<"EOF");
# two tunnels, one session
server = 127.0.0.1:${\ $t->port('reg')}
token  = clienttoken-0123456789
plain  = yes

[tunnel one]
kind  = tcp
local = $svc

[tunnel app]
kind  = tls
local = 127.0.0.1:$svc
name  = app
EOF

$t->run;

$t->tunnel('cl', 'start', '--config', $t->testdir . '/tunnel.conf',
    '--log-format', 'json');

ok($t->wait_for_file_match('cl.out', qr/"event":"bound".*"event":"bound"/s),
    'tunnel start: both tunnels of the config file are bound')
    or diag($t->output('cl'));

my ($tcp_port) = $t->read_file('cl.out') =~ m{tcp://127\.0\.0\.1:(\d+)};
ok($tcp_port && $tcp_port >= $lo, "the tcp tunnel got a port of the range")
    or diag($t->read_file('cl.out'));
like($t->read_file('cl.out'), qr{"url":"https://app\.tun\.test"},
    'the tls tunnel got its name');

is(command($tcp_port, 'hello')->{data}, "hello from local\n",
    'the tcp tunnel reaches the service');
is(command($t->port('public'), 'hello')->{data}, "hello from local\n",
    'the tls tunnel too, through tunnel_pass, in the same session');

my @sessions = $t->error_log =~ /session (\w+) from/g;
is(scalar(my @u = uniq(@sessions)), 1, 'one session carries both')
    or diag(join ' ', @sessions);

# The server stops (gracefully), stays away a moment, comes back.

ok($t->stop, 'nginx stops');
sleep 1;
$t->run;
my $start = time;
my $back = wait_until(sub {
    (command($tcp_port, 'hello', timeout => 1)->{data} // '')
        eq "hello from local\n"
});
my $took = time - $start;

ok($back, 'after a server restart the tcp tunnel has its old port back');
is(command($t->port('public'), 'hello')->{data}, "hello from local\n",
    'and the tls name works again');
diag(sprintf('reconnect after the restart: %.0f ms until the tcp port '
    . 'served again', $took * 1000));
like($t->read_file('cl.out'), qr/"event":"reconnecting"/,
    'the client said it was reconnecting');
ok(kill(0, $t->{procs}{cl}), 'and it is still running');

# The server is killed outright: no go-away, the connection just breaks.

my @workers = workers($t);
kill KILL => $t->{master}, @workers;
waitpid($t->{master}, 0);
sleep 0.05 while grep { kill 0, $_ } @workers;
delete $t->{master};
unlink $t->testdir . '/nginx.pid';
$t->run;
$start = time;
$back = wait_until(sub {
    (command($tcp_port, 'hello', timeout => 1)->{data} // '')
        eq "hello from local\n"
});
$took = time - $start;
ok($back, 'after nginx was killed the client gets the same port back');
diag(sprintf('reconnect after a kill: %.0f ms', $took * 1000));
is(command($t->port('public'), 'hello')->{data}, "hello from local\n",
    'and the same name');

# SIGTERM with a connection open: it is served to its end.

my $s = connect_tcp($tcp_port);
syswrite($s, "echo\nbefore\n");
ok(read_line($s) eq "before\n", 'an echo connection is open');

kill TERM => $t->{procs}{cl};
ok($t->wait_for_file_match('cl.out', qr/"event":"quit"/, 5),
    'SIGTERM: the client says it is closing the tunnels');
syswrite($s, "after\n");
is(read_line($s), "after\n",
    'the open connection still works while the client leaves');
is($t->wait_exit('cl', 0.5), undef, 'the client waits for it');

shutdown($s, 1);
$start = time;
my $status = $t->wait_exit('cl', 10);
is($status, 0, 'once it is closed, the client exits with status 0');
ok(time - $start < 3, sprintf('  at once (%.1f s)', time - $start));
like($t->error_log, qr/\[info\] .*client is leaving/,
    'nginx logs that the client left');

ok($t->stop, 'nginx quits gracefully');


sub uniq { my %s; grep { !$s{$_}++ } @_ }

# true once $cond is, within 10 s
sub wait_until {
    my ($cond) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return 0;
}

sub read_line {
    my ($sock) = @_;
    my $line = '';
    my $deadline = time + 5;
    $sock->blocking(0);
    while (time < $deadline && $line !~ /\n/) {
        my $n = sysread($sock, my $buf, 4096);
        if (defined $n && $n == 0) {
            last;
        }
        $line .= $buf if $n;
        sleep 0.01 unless $n;
    }
    return $line;
}
