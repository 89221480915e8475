#!/usr/bin/perl

# A local service that is down: the public connection is closed at once
# (tcp by its port, tls by tunnel_pass), the client and nginx say why, the
# tunnel stays up and serves again as soon as the service is back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use TunnelTest qw(DEVTOKEN);
use TunnelService qw(service command);

my $t = TunnelTest->new->plan(11);

my $range = $t->port_range('tcp', 4);

$t->write_config($t->registration_config(tcp => $range, app => 1));

$t->run;

# nothing listens there yet
my $dead = $t->port('svc');
my @args = ('--plain', '--server', '127.0.0.1:' . $t->port('reg'),
    '--token', DEVTOKEN);

$t->tunnel('tcp', 'tcp', $dead, @args);
$t->tunnel('tls', 'tls', $dead, '--name', 'app', @args);

my ($port) = ($t->tunnel_url('tcp') // '') =~ /:(\d+)$/;
ok($port, 'a tcp tunnel to a local port where nothing listens');
is($t->tunnel_url('tls'), 'https://app.tun.test', 'and a tls tunnel');

for my $case ([ 'tcp', $port ], [ 'tls', $t->port('app') ]) {
    my ($kind, $p) = @$case;

    my $start = time;
    my $r = command($p, 'hello', timeout => 10);
    my $took = time - $start;

    # (on loopback the reset may even beat connect() to its end)
    ok(($r->{eof} || ($r->{error} // '') =~ /reset/) && !$r->{len}
        && $took < 3,
        sprintf('%s: the public connection is closed without data (%.1fs%s)',
            $kind, $took, $r->{error} ? ", $r->{error}" : ''));
    like($t->read_file("$kind.out"), qr/refused|cannot (?:reach|connect)/i,
        "$kind: the client says the local service refused");
}

like($t->error_log, qr/\[info\] .*reset by the client/,
    'error.log says the client reset the connection\'s stream');
unlike($t->error_log, qr/\[(?:error|crit|alert)\]/, '  not as an error');

# the service comes back

service($t, 'svc', 'tcp', 'back');

is(command($port, 'hello')->{data}, "hello from back\n",
    'tcp: served again once the service is back');
is(command($t->port('app'), 'hello')->{data}, "hello from back\n",
    'tls: served again once the service is back');

ok($t->stop, 'nginx quits gracefully');
