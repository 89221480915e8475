package TunnelHTTP;

# Helpers for the HTTP tunnel tests (t/3x-*.t), beside TunnelTest: a local
# backend (t/lib/http-backend.pl), the client's public URL, and an HTTP/1.1
# client that reads one response at a time, so that keep-alive, chunked
# bodies and websockets can be checked.  See the POD at the end.

use strict;
use warnings;

use Exporter qw(import);
use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::IP;
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(start_backend tunnel_url start_http_tunnel edge_config
    http_connect http_send http_response http_request write_all ws_frame
    ws_read_frame TOKEN);

use constant TOKEN => 'test-token-0123456789abcdef';

my $BACKEND = dirname(__FILE__) . '/http-backend.pl';


# Starts the backend NAME on port "backend_NAME"; returns the port once it
# accepts.
sub start_backend {
    my ($t, $name) = @_;
    my $port = $t->port("backend_$name");

    $t->spawn("backend-$name", $^X, $BACKEND, $port, $name, $t->testdir);

    my $deadline = time + 10;
    while (time < $deadline) {
        my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => 1);
        return $port if $s;
        sleep 0.05;
    }
    die "backend $name not listening on $port\n";
}

# The public URL of the client spawned as NAME: the first http(s)/tls/tcp
# URL on a line that says "bound", on its stdout or stderr, after the
# first $skip->{out} and $skip->{err} bytes (what an earlier run wrote).
sub tunnel_url {
    my ($t, $name, $timeout, $skip) = @_;
    my $deadline = time + ($timeout // 10);

    while (1) {
        for my $f ('out', 'err') {
            my $text = substr($t->read_file("$name.$f"), $skip->{$f} // 0);
            for my $line (split /\n/, $text) {
                next unless $line =~ /bound/i;
                return $1 if $line =~ m{((?:https?|tls|tcp)://[^\s"',]+)};
            }
        }
        last if time >= $deadline;
        sleep 0.05;
    }

    Test::More::diag("client $name: no \"bound\" line; its output:\n"
        . $t->output($name));
    return undef;
}

# "tunnel http TARGET" as NAME, registered with the server on port "reg"
# (plain TCP); @args are more options (--name LABEL by default).
# Returns the public URL.
sub start_http_tunnel {
    my ($t, $name, $target, @args) = @_;
    @args = ('--name', $name) unless @args;

    my %skip = map { $_ => length $t->read_file("$name.$_") } qw(out err);

    $t->tunnel($name, 'http', $target,
        '--server', '127.0.0.1:' . $t->port('reg'), '--token', TOKEN,
        '--plain', '--log-format', 'text', @args);

    return tunnel_url($t, $name, 10, \%skip);
}

# The usual edge for the tests: TunnelTest's registration_config on "reg",
# with a token file of TOKEN (account "tester") and http URLs, and an http
# server on "http" that proxies *.tun.test to the tunnels.  %o: workers
# (1), tcp (a port range, as for registration_config), http (more text for
# the http block), server (more text for the http server), location (more
# text for "location /"), stream (more text for the stream block),
# registration (more text for the registration server), status (location
# /tunnels), route (tunnel_route's parameters after $host).
sub edge_config {
    my ($t, %o) = @_;

    my $workers = $o{workers} // 1;
    my $http = $o{http} // '';
    my $server = $o{server} // '';
    my $location = $o{location} // '';
    my $route = $o{route} // '';

    return $t->registration_config(zone => '4m',
        tokens => TOKEN . " id=tester\n", tcp => $o{tcp},
        reg => 'tunnel_url http http://$name:%%PORT_http%%;' . "\n"
            . ($o{registration} // ''),
        stream => $o{stream}, main => <<"EOF") . <<"EOF";
worker_processes $workers;

events {
    worker_connections 4096;
}

EOF
http {
    upstream tunnels {
        tunnel_route \$host $route;
    }

$http

    server {
        # reuseport: each worker has its own socket, and the kernel spreads
        # connections over them, so that requests reach tunnels both from
        # the worker that holds the session and, handed over, from others
        listen 127.0.0.1:%%PORT_http%% reuseport;
        server_name *.tun.test;

        location / {
            proxy_pass http://tunnels;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
$location
        }

        location = /tunnels {
            tunnel_status;
        }

$server
    }
}
EOF
}


### HTTP/1.1, one response at a time

sub http_connect {
    my ($port) = @_;
    return IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 5);
}

# Writes a request: %o: method (GET), host, headers (text), body, version
# (1.1), close (adds Connection: close).
sub http_send {
    my ($s, $uri, %o) = @_;
    my $body = $o{body};
    my $req = ($o{method} // 'GET') . " $uri HTTP/" . ($o{version} // '1.1')
        . "\r\nHost: " . ($o{host} // 'localhost') . "\r\n"
        . ($o{headers} // '');
    $req .= "Connection: close\r\n" if $o{close};
    $req .= "Content-Length: " . length($body) . "\r\n"
        if defined $body && ($o{headers} // '') !~ /^Transfer-Encoding:/mi;
    $req .= "\r\n";
    $req .= $body if defined $body;

    return write_all($s, $req, $o{timeout} // 30);
}

# Reads one response: returns { status, headers (lowercase keys), head,
# body, raw } or undef on a timeout or a close before the end.  The body is
# read by Content-Length, chunked encoding, or up to the close.
sub http_response {
    my ($s, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my $deadline = time + $timeout;
    my $buf = \(${*$s}{tunnel_http_buf} //= '');

    my $read = sub {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        return 0 unless IO::Select->new($s)->can_read($left);
        my $n = sysread($s, my $data, 262144);
        return 0 unless $n;
        $$buf .= $data;
        return 1;
    };

    my $i;
    until (($i = index($$buf, "\r\n\r\n")) >= 0) {
        $read->() or return undef;
    }

    my $head = substr($$buf, 0, $i + 4, '');
    my ($status) = $head =~ m{^HTTP/1\.\d (\d{3})} or return undef;
    my %h;
    $h{lc $1} = $2 while $head =~ /^([^:\r\n]+):\s*(.*?)\r$/mg;

    my $r = { status => $status, headers => \%h, head => $head };

    if ($o{head_only} || $status == 101 || $status == 204
        || $status == 304 || ($o{method} // '') eq 'HEAD')
    {
        $r->{body} = '';
        return $r;
    }

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $body = '';
        while (1) {
            my ($line, $size);
            until (($line, $size) = $$buf =~ /\A(([0-9a-fA-F]+)[^\r]*\r\n)/)
            {
                $read->() or return undef;
            }
            $size = hex $size;
            substr($$buf, 0, length $line, '');
            if ($size == 0) {
                # the trailers, up to an empty line
                my $end;
                until (($end) = $$buf =~ /\A((?:[^\r\n]+\r\n)*\r\n)/) {
                    $read->() or return undef;
                }
                substr($$buf, 0, length $end, '');
                last;
            }
            while (length $$buf < $size + 2) {
                $read->() or return undef;
            }
            $body .= substr($$buf, 0, $size, '');
            substr($$buf, 0, 2, '');
        }
        $r->{body} = $body;

    } elsif (defined $h{'content-length'}) {
        my $len = $h{'content-length'};
        while (length $$buf < $len) {
            $read->() or return undef;
        }
        $r->{body} = substr($$buf, 0, $len, '');

    } else {
        1 while $read->();
        $r->{body} = $$buf;
        $$buf = '';
    }

    return $r;
}

# One request on a new connection: http_send and http_response.
sub http_request {
    my ($port, $uri, %o) = @_;
    my $s = http_connect($port) or return undef;
    http_send($s, $uri, %o) or return undef;
    return http_response($s, %o);
}

# Writes all of $data within $timeout seconds (30); true if it did.
sub write_all {
    my ($s, $data, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    my $off = 0;

    while ($off < length $data) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        next unless IO::Select->new($s)->can_write($left);
        my $n = syswrite($s, $data, 1048576, $off);
        return 0 unless defined $n;
        $off += $n;
    }

    return 1;
}


### WebSocket

# A client's frame: final, masked (RFC 6455 5.3).
sub ws_frame {
    my ($opcode, $payload) = @_;
    my $len = length $payload;
    my $mask = pack('N', int(rand(2**32)));
    my $head = pack('C', 0x80 | $opcode);

    if ($len < 126) {
        $head .= pack('C', 0x80 | $len);
    } elsif ($len < 65536) {
        $head .= pack('Cn', 0x80 | 126, $len);
    } else {
        $head .= pack('CQ>', 0x80 | 127, $len);
    }

    return $head . $mask
        . ($payload ^ substr($mask x (int($len / 4) + 1), 0, $len));
}

# Reads one frame from the server: (opcode, payload), or () on a timeout.
sub ws_read_frame {
    my ($s, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    my $buf = \(${*$s}{tunnel_http_buf} //= '');

    my $need = sub {
        my ($n) = @_;
        while (length $$buf < $n) {
            my $left = $deadline - time;
            return 0 if $left <= 0
                || !IO::Select->new($s)->can_read($left);
            my $k = sysread($s, my $data, 262144);
            return 0 unless $k;
            $$buf .= $data;
        }
        return 1;
    };

    $need->(2) or return;
    my ($b0, $b1) = unpack('CC', $$buf);
    my ($len, $off) = ($b1 & 0x7f, 2);
    if ($len == 126) {
        $need->(4) or return;
        ($len, $off) = (unpack('x2n', $$buf), 4);
    } elsif ($len == 127) {
        $need->(10) or return;
        ($len, $off) = (unpack('x2Q>', $$buf), 10);
    }
    $need->($off + $len) or return;
    my $payload = substr($$buf, $off, $len);
    substr($$buf, 0, $off + $len, '');

    return ($b0 & 0x0f, $payload);
}

1;

__END__

=head1 NAME

TunnelHTTP - helpers for the HTTP tunnel tests

=head1 SYNOPSIS

    use TunnelTest;
    use TunnelHTTP qw(edge_config start_backend start_http_tunnel
                      http_request);

    my $t = TunnelTest->new->plan(1);
    $t->write_config(edge_config($t));
    $t->run;
    my $backend = start_backend($t, 'web');
    my $url = start_http_tunnel($t, 'web', $backend);   # web.tun.test
    my $r = http_request($t->port('http'), '/', host => 'web.tun.test');
    is($r->{status}, 200, 'through the tunnel');

=head1 FUNCTIONS

start_backend($t, $name): t/lib/http-backend.pl on port "backend_$name"
(its paths are listed at its top), logging to "$name.log" in the test
directory.

start_http_tunnel($t, $name, $target, @args): the client, registered on port
"reg" with TOKEN; returns the public URL.  tunnel_url($t, $name) waits for
that URL in the client's output.

edge_config($t, %o): the usual registration server and http edge (see the
comment at the sub).

http_connect($port), http_send($sock, $uri, %o), http_response($sock, %o),
http_request($port, $uri, %o): an HTTP/1.1 client, one response at a time;
write_all($sock, $data, $timeout).

ws_frame($opcode, $payload), ws_read_frame($sock, $timeout): websocket
frames.

=cut
