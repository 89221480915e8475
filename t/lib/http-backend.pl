#!/usr/bin/perl

# A local HTTP service for the integration tests: what a developer would
# run behind "tunnel http".  One process per connection, HTTP/1.1 with
# keep-alive, and a few paths that exercise the edge:
#
#   /data/N         N random bytes; X-SHA256 is their hash
#   /upload         (any method with a body, Content-Length or chunked)
#                   "len=N sha256=HEX\n" of the body received
#   /headers        the request head, as received
#   /chunked        a chunked response: "chunk 1\n" .. "chunk 5\n", one a
#                   chunk, 100 ms apart
#   /sse            text/event-stream: "data: first", then holds the response
#                   open until DIR/sse-release exists (15 s at most), then
#                   "data: second" and the end of the response
#   /ws             websocket: the handshake, then every data frame echoed
#   /sleep/N        waits N seconds (may be fractional), then answers
#   anything else   "hello from NAME: METHOD PATH\n"
#
# Every response says X-Backend: NAME and X-Backend-Conn: <pid of the
# connection's process>.  Every request is logged to DIR/NAME.log as
# "<pid> <method> <path>".
#
# Usage: http-backend.pl PORT NAME DIR

use strict;
use warnings;

use Digest::SHA qw(sha1 sha256_hex);
use IO::Socket::IP;
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);

my ($port, $name, $dir) = @ARGV;
die "usage: $0 PORT NAME DIR\n" unless $port && $name && $dir;

my $server = IO::Socket::IP->new(LocalHost => '127.0.0.1',
    LocalPort => $port, Listen => 1024, ReuseAddr => 1)
    or die "http-backend: cannot listen on 127.0.0.1:$port: $@\n";

$SIG{CHLD} = 'IGNORE';
$SIG{PIPE} = 'IGNORE';

while (1) {
    my $c = $server->accept or next;
    my $pid = fork;
    if (!defined $pid) {
        close $c;
        next;
    }
    if ($pid == 0) {
        close $server;
        eval { serve($c) };
        POSIX::_exit(0);
    }
    close $c;
}


# A buffered reader over sysread: heads and bodies from one buffer.

sub fill {
    my ($conn) = @_;
    my $n = sysread($conn->{sock}, my $buf, 262144);
    return 0 unless $n;
    $conn->{buf} .= $buf;
    return $n;
}

sub read_line {
    my ($conn) = @_;
    while ((my $i = index($conn->{buf}, "\n")) < 0) {
        return undef if length $conn->{buf} > 65536 || !fill($conn);
    }
    my $i = index($conn->{buf}, "\n");
    return substr($conn->{buf}, 0, $i + 1, '');
}

# Reads $len bytes, feeding them to $sha.
sub read_exact {
    my ($conn, $len, $sha) = @_;
    while ($len > 0) {
        if (!length $conn->{buf}) {
            fill($conn) or die "eof in body\n";
        }
        my $k = $len < length $conn->{buf} ? $len : length $conn->{buf};
        $sha->add(substr($conn->{buf}, 0, $k, ''));
        $len -= $k;
    }
}

sub read_body {
    my ($conn, $h) = @_;
    my $sha = Digest::SHA->new(256);
    my $len = 0;

    if (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $line = read_line($conn) // die "eof in chunk size\n";
            my ($size) = $line =~ /^([0-9a-fA-F]+)/ or die "bad chunk\n";
            $size = hex $size;
            if ($size == 0) {
                # trailers, up to the empty line
                while (defined(my $t = read_line($conn))) {
                    last if $t =~ /^\r?\n\z/;
                }
                last;
            }
            read_exact($conn, $size, $sha);
            $len += $size;
            read_line($conn);
        }

    } elsif ($h->{'content-length'}) {
        $len = $h->{'content-length'};
        read_exact($conn, $len, $sha);
    }

    return ($len, $sha->hexdigest);
}

sub send_all {
    my ($conn, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($conn->{sock}, $data, length($data) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
}

sub respond {
    my ($conn, $status, $body, %h) = @_;
    my $head = "HTTP/1.1 $status\r\n"
        . "X-Backend: $name\r\nX-Backend-Conn: $$\r\n";
    $head .= "$_: $h{$_}\r\n" for sort keys %h;
    $head .= "Content-Length: " . length($body) . "\r\n"
        unless $h{'Transfer-Encoding'};
    $head .= "Connection: close\r\n" if $conn->{close};
    send_all($conn, "$head\r\n$body");
}

sub serve {
    my ($sock) = @_;
    my $conn = { sock => $sock, buf => '' };

    while (1) {
        my $line = read_line($conn) // return;
        next if $line =~ /^\r?\n\z/;
        my ($method, $path, $version) = $line =~ m{^(\S+) (\S+) (HTTP/1\.\d)}
            or return;

        my ($head, %h) = ($line);
        while (1) {
            my $hl = read_line($conn) // return;
            $head .= $hl;
            last if $hl =~ /^\r?\n\z/;
            $h{lc $1} = $2 if $hl =~ /^([^:]+):\s*(.*?)\r?\n\z/;
        }

        $conn->{close} = $version eq 'HTTP/1.0'
            || ($h{connection} // '') =~ /close/i;

        if (open my $log, '>>', "$dir/$name.log") {
            syswrite($log, "$$ $method $path\n");
            close $log;
        }

        if ($path eq '/ws' && ($h{upgrade} // '') =~ /websocket/i) {
            websocket($conn, \%h);
            return;
        }

        my ($len, $sha) = read_body($conn, \%h);

        if ($path =~ m{^/data/(\d+)$}) {
            my $data = random_bytes($1);
            respond($conn, '200 OK', $data,
                'Content-Type' => 'application/octet-stream',
                'X-SHA256' => sha256_hex($data));

        } elsif ($path eq '/upload') {
            respond($conn, '200 OK', "len=$len sha256=$sha\n",
                'Content-Type' => 'text/plain');

        } elsif ($path eq '/headers') {
            respond($conn, '200 OK', $head, 'Content-Type' => 'text/plain');

        } elsif ($path eq '/chunked') {
            chunked($conn);

        } elsif ($path eq '/sse') {
            sse($conn);

        } elsif ($path =~ m{^/sleep/([\d.]+)$}) {
            sleep $1;
            respond($conn, '200 OK', "slept $1\n",
                'Content-Type' => 'text/plain');

        } else {
            respond($conn, '200 OK', "hello from $name: $method $path\n",
                'Content-Type' => 'text/plain');
        }

        return if $conn->{close};
    }
}

sub random_bytes {
    my ($n) = @_;
    open my $fh, '<:raw', '/dev/urandom' or die "urandom: $!\n";
    my $data = '';
    while (length $data < $n) {
        read($fh, my $buf, $n - length $data) or die "urandom: $!\n";
        $data .= $buf;
    }
    return $data;
}

sub chunked {
    my ($conn) = @_;
    send_all($conn, "HTTP/1.1 200 OK\r\nX-Backend: $name\r\n"
        . "X-Backend-Conn: $$\r\nContent-Type: text/plain\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n");
    for my $i (1 .. 5) {
        my $data = "chunk $i\n";
        send_all($conn, sprintf("%x\r\n%s\r\n", length $data, $data));
        sleep 0.1;
    }
    send_all($conn, "0\r\n\r\n");
}

sub sse {
    my ($conn) = @_;
    my $event = sub {
        my $data = "data: $_[0]\n\n";
        send_all($conn, sprintf("%x\r\n%s\r\n", length $data, $data));
    };

    send_all($conn, "HTTP/1.1 200 OK\r\nX-Backend: $name\r\n"
        . "X-Backend-Conn: $$\r\nContent-Type: text/event-stream\r\n"
        . "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n");
    $event->('first');

    my $deadline = time + 15;
    sleep 0.05 while !-e "$dir/sse-release" && time < $deadline;

    $event->('second');
    send_all($conn, "0\r\n\r\n");
}

sub websocket {
    my ($conn, $h) = @_;
    my $key = $h->{'sec-websocket-key'} // '';
    my $accept = encode_base64(
        sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');

    send_all($conn, "HTTP/1.1 101 Switching Protocols\r\n"
        . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        . "Sec-WebSocket-Accept: $accept\r\nX-Backend: $name\r\n\r\n");

    while (1) {
        while (length $conn->{buf} < 2) {
            fill($conn) or return;
        }
        my ($b0, $b1) = unpack('CC', $conn->{buf});
        my $len = $b1 & 0x7f;
        my $off = 2;
        if ($len == 126) {
            $off = 4;
        } elsif ($len == 127) {
            $off = 10;
        }
        my $masked = $b1 & 0x80;
        my $need = $off + ($masked ? 4 : 0);
        while (length $conn->{buf} < $need) {
            fill($conn) or return;
        }
        if ($len == 126) {
            $len = unpack('x2n', $conn->{buf});
        } elsif ($len == 127) {
            $len = unpack('x2Q>', $conn->{buf});
        }
        while (length $conn->{buf} < $need + $len) {
            fill($conn) or return;
        }
        my $mask = $masked ? substr($conn->{buf}, $off, 4) : "\0\0\0\0";
        my $payload = substr($conn->{buf}, $need, $len);
        substr($conn->{buf}, 0, $need + $len, '');
        $payload ^= substr($mask x (int($len / 4) + 1), 0, $len);

        my $opcode = $b0 & 0x0f;
        send_all($conn, ws_frame($opcode, $payload));
        return if $opcode == 8;
    }
}

# A server's frame: final, unmasked.
sub ws_frame {
    my ($opcode, $payload) = @_;
    my $len = length $payload;
    my $head = pack('C', 0x80 | $opcode);
    if ($len < 126) {
        $head .= pack('C', $len);
    } elsif ($len < 65536) {
        $head .= pack('Cn', 126, $len);
    } else {
        $head .= pack('CQ>', 127, $len);
    }
    return $head . $payload;
}
