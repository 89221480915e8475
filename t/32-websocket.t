#!/usr/bin/perl

# A websocket through an HTTP tunnel: nginx's usual Upgrade proxying
# (proxy_set_header Upgrade/Connection) on a tunnel upstream, the handshake
# answered by the local service, then frames echoed both ways.

use strict;
use warnings;

use Digest::SHA qw(sha1);
use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Select;
use MIME::Base64 qw(encode_base64);
use Test::More;
use TunnelTest;
use TunnelHTTP qw(edge_config start_backend start_http_tunnel http_connect
    http_send http_response http_request write_all ws_frame ws_read_frame);

my $t = TunnelTest->new->plan(11);

$t->write_config(edge_config($t,
    workers => 2,
    http => q{
    map $http_upgrade $connection_upgrade {
        default  upgrade;
        ''       '';
    }
},
    server => q{
        location /ws {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 30s;
        }
}));

$t->run;

my $backend = start_backend($t, 'web');
start_http_tunnel($t, 'web', $backend);
my $port = $t->port('http');

my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
my $accept = encode_base64(
    sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');

my $s = http_connect($port);
http_send($s, '/ws', host => 'web.tun.test', headers =>
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n");
my $r = http_response($s, timeout => 10);

is($r && $r->{status}, 101, 'websocket handshake: 101 Switching Protocols');
is($r && $r->{headers}{'sec-websocket-accept'}, $accept,
    '  with the service\'s Sec-WebSocket-Accept');
like($r && $r->{headers}{upgrade} // '', qr/^websocket$/i,
    '  and Upgrade: websocket');

syswrite($s, ws_frame(1, 'hello, tunnel'));
my ($op, $data) = ws_read_frame($s, 5);
is($op, 1, 'a text frame comes back as text');
is($data, 'hello, tunnel', '  with the same payload');

# a larger binary frame: 300 KiB, more than a yamux window's first credit
my $blob = join '', map { pack 'N', int rand 2**32 } 1 .. 76800;
write_all($s, ws_frame(2, $blob));
($op, $data) = ws_read_frame($s, 10);
is($op, 2, 'a 300 KiB binary frame comes back as binary');
ok(defined $data && $data eq $blob, '  byte for byte');

# many small round trips on the same connection
my $ok = 0;
for my $i (1 .. 50) {
    syswrite($s, ws_frame(1, "message $i"));
    my ($o, $d) = ws_read_frame($s, 5);
    $ok++ if defined $d && $d eq "message $i";
}
is($ok, 50, '50 round trips on one websocket');

# close: the service answers the close frame, then the connection ends
syswrite($s, ws_frame(8, pack('n', 1000)));
($op, $data) = ws_read_frame($s, 5);
is($op, 8, 'close frame answered');

my $eof = 0;
if (IO::Select->new($s)->can_read(5)) {
    $eof = !sysread($s, my $buf, 1);
}
ok($eof, '  then the public connection is closed');
close $s;

# the tunnel serves ordinary requests afterwards
$r = http_request($port, '/after', host => 'web.tun.test');
is($r && $r->{body}, "hello from web: GET /after\n",
    'a plain request after the websocket');

