#!/usr/bin/perl

# Names: one held by a token is never given to another token (whatever the
# kind), while the client that holds it takes it over at once from a new
# session: after its connection silently died (the stale session still
# alive in nginx), or after it was killed and started again.  Random names
# are DNS-safe and distinct.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use TunnelTest;
use TunnelService qw(service command);
use Time::HiRes qw(time sleep);

my $t = TunnelTest->new->plan(21);

# tunnel_pass with a fixed name: plain bytes reach the tls tunnel "app"
$t->write_config($t->registration_config(tokens => <<'EOF',
alicetoken-0123456789 id=alice
bobtoken-0123456789ab id=bob
EOF
    reg => 'tunnel_heartbeat 1s;', app => 1));

$t->run;

my $reg = $t->port('reg');
my $app = $t->port('app');
my @alice = ('--token', 'alicetoken-0123456789', '--plain');
my @bob = ('--token', 'bobtoken-0123456789ab', '--plain');

my $svc_a = service($t, 'svc_a', 'tcp', 'A');
my $svc_b = service($t, 'svc_b', 'tcp', 'B');
my $relay = service($t, 'relay', 'relay', 'relay', $reg);

# (no named sub may hold $t: it must go before Test::More's last word)
my $hello = sub { command($app, 'hello', timeout => 5)->{data} // '' };

# alice's client goes through a relay that can cut its connection silently
$t->tunnel('alice', 'tls', $svc_a, '--name', 'app', @alice,
    '--server', "127.0.0.1:$relay");

is($t->tunnel_url('alice'), 'https://app.tun.test',
    'alice binds the label "app" under tunnel_domain')
    or diag($t->output('alice'));
is($hello->(), "hello from A\n", 'app.tun.test reaches alice\'s service');

# bob may not have it, whatever the kind

$t->tunnel('bob', 'tls', $svc_b, '--name', 'app', @bob,
    '--server', "127.0.0.1:$reg");
is($t->wait_exit('bob', 10), 1 << 8,
    'bob asks for the same name: his client exits with status 1');
like($t->output("bob"), qr/app.*(taken|in use|held)/i,
    '  and says the name is taken');
like($t->error_log,
    qr/\[info\] .*\(account "bob"\) refused tls bind "app" port 0: .*(taken|in use)/,
    '  error.log says which account was refused which name, and why');

$t->tunnel('bob_http', 'http', $svc_b, '--name', 'app', @bob,
    '--server', "127.0.0.1:$reg");
is($t->wait_exit('bob_http', 10), 1 << 8,
    'bob asks for it as an http tunnel: refused too');
like($t->error_log, qr/\[info\] .*\(account "bob"\) refused http bind "app"/,
    '  error.log says so');

is(join('', map { $hello->() } 1 .. 4), "hello from A\n" x 4,
    'app.tun.test still reaches alice only');

# alice's connection dies silently: nginx still sees her session alive (the
# relay answers its pings), her client notices the silence, connects again
# and binds "app" from the new session

my $start = time;
kill USR1 => -$t->{procs}{relay};

ok($t->wait_for_file_match('error.log',
        qr/\[info\] .*tls "app\.tun\.test" taken over by session (\w+) from session \w+/,
        15),
    'alice\'s new session takes "app" over from the stale one')
    or diag($t->output('alice'));
my $took = time - $start;
ok($took < 10, sprintf('  as soon as her client noticed (%.1fs, '
    . 'heartbeat 1s)', $took));
unlike($t->error_log, qr/\(account "alice"\) refused/,
    '  and is not refused');

my @got = map { $hello->() } 1 .. 6;
is(scalar(grep { $_ eq "hello from A\n" } @got), 6,
    '  every connection goes to the new session, none to the stale one')
    or diag(explain \@got);

# kill -9, then the same name from a new process (a new client instance)

$t->kill_process('alice', signal => 'KILL');
$t->kill_process('relay');

$start = time;
$t->tunnel('alice2', 'tls', $svc_b, '--name', 'app', @alice,
    '--server', "127.0.0.1:$reg");
is($t->tunnel_url('alice2'), 'https://app.tun.test',
    'alice killed with SIGKILL and started again: she gets "app" back')
    or diag($t->output('alice2'));
$took = time - $start;
ok($took < 3, sprintf('  at once (%.1fs)', $took));
unlike($t->output('alice2'), qr/bind-error|taken/i, '  not refused');
is($hello->(), "hello from B\n", '  app.tun.test reaches her new service');

# random names

$t->tunnel('r1', 'tls', $svc_a, @bob, '--server', "127.0.0.1:$reg");
$t->tunnel('r2', 'tls', $svc_a, @bob, '--server', "127.0.0.1:$reg");
my ($u1, $u2) = map { $t->tunnel_url($_) // '' } qw(r1 r2);

like($u1, qr{^https://[a-z0-9]{6,63}\.tun\.test$},
    'no name asked: a random DNS-safe label under tunnel_domain');
like($u2, qr{^https://[a-z0-9]{6,63}\.tun\.test$}, '  another one');
isnt($u1, $u2, '  two clients get two names');
like($t->error_log, qr/\[info\] .*\(account "bob"\) bound tls tunnel \Q$u1\E/,
    '  error.log says who has it');

ok($t->stop, 'nginx quits gracefully');
