package TunnelService;

# Local services for the integration tests (run by t/lib/service.pl), the
# data they send, and the public clients that talk to them: a tunnel test
# checks what arrives at the far end, byte for byte, by SHA-256.
#
# service.pl speaks a line protocol on each connection, plain or TLS: the
# first line is a command, then
#
#   hello              "hello from <label>\n", then close
#   echo               every byte back until EOF, then close
#   sink               read until EOF, then "<sha256 hex> <bytes>\n"
#   source <n> <seed>  send data($seed, $n), then close
#   stall <s>          read nothing for <s> seconds, then act as sink
#
# Each connection is served by a child process of its own.

use strict;
use warnings;

use Digest::SHA qw(sha256 sha256_hex);
use Exporter qw(import);
use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::IP;
use Socket qw(SHUT_WR SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(service make_cert data_block data_sha connect_tcp
    transfer command vm_rss fd_count workers);

my $BLOCK = 65536;
my %base;

# The 64 KiB block $i of the stream of $seed: every block differs, so a
# block lost, repeated or out of order changes the hash.
sub data_block {
    my ($seed, $i) = @_;
    $base{$seed} //= join '', map { sha256("$seed:$_") } 0 .. $BLOCK / 32 - 1;
    return pack('NN', $seed, $i) . substr($base{$seed}, 8);
}

# SHA-256 (hex) of the first $n bytes of the stream of $seed.
sub data_sha {
    my ($seed, $n) = @_;
    my $sha = Digest::SHA->new(256);
    for (my ($i, $left) = (0, $n); $left > 0; $i++, $left -= $BLOCK) {
        $sha->add(substr(data_block($seed, $i), 0,
            $left < $BLOCK ? $left : $BLOCK));
    }
    return $sha->hexdigest;
}

# Starts service.pl as process $name of the test: mode "tcp" (a label), or
# "tls" (a label, its certificate and key).  Returns its port, once it
# listens.
sub service {
    my ($t, $name, $mode, @args) = @_;
    my $port = $t->port($name);
    $t->spawn($name, $^X, dirname(__FILE__) . '/service.pl', $mode, $port,
        @args);
    $t->wait_for_file_match("$name.out", qr/^ready/m, 10)
        or die "service $name did not start: "
            . $t->read_file("$name.err") . "\n";
    return $port;
}

# A self-signed certificate for $cn (also its own CA) with the given
# subjectAltName entries, in the test directory.  Returns (crt, key).
sub make_cert {
    my ($t, $cn, @san) = @_;
    my $d = $t->testdir;
    @san = ("DNS:$cn") unless @san;
    my $out = `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \\
        -nodes -days 2 -subj /CN=$cn -addext subjectAltName=@{[join ',', @san]} \\
        -keyout $d/$cn.key -out $d/$cn.crt 2>&1`;
    die "openssl req for $cn failed: $out" if $?;
    chmod 0644, "$d/$cn.key", "$d/$cn.crt";
    return ("$d/$cn.crt", "$d/$cn.key");
}

sub connect_tcp {
    my ($port, %opts) = @_;
    return IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => $opts{timeout} // 5);
}

# Sends the command line, then (unless told otherwise) $send bytes of the
# stream of $seed, half-closing after them, while reading what comes back,
# all at once.  Returns { sha => hex, len => bytes, data => first 64 KiB,
# eof => 1 if the peer closed, error => text }.  Options: send, seed,
# timeout (30s), no_shutdown, read (0: do not read at all until
# resume_after seconds), keep (keep the socket open: returned as "sock").
sub transfer {
    my ($sock, $cmd, %opts) = @_;
    my $send = $opts{send} // 0;
    my $seed = $opts{seed} // 1;
    my $deadline = time + ($opts{timeout} // 30);
    my $sha = Digest::SHA->new(256);
    my %r = (len => 0, data => '', eof => 0);

    local $SIG{PIPE} = 'IGNORE';

    $sock->blocking(0);

    my $out = defined $cmd ? "$cmd\n" : '';
    my ($i, $sent, $shut) = (0, 0, 0);
    my $sel_r = IO::Select->new($sock);
    my $sel_w = IO::Select->new($sock);

    while (time < $deadline) {
        if (length $out < $BLOCK && $sent < $send) {
            my $n = $send - $sent < $BLOCK ? $send - $sent : $BLOCK;
            $out .= substr(data_block($seed, $i++), 0, $n);
            $sent += $n;
        }

        if (!length $out && $sent >= $send && !$shut) {
            shutdown($sock, SHUT_WR) unless $opts{no_shutdown};
            $shut = 1;
        }

        last if $r{eof} && (!length $out || $r{error});

        my ($rd, $wr) = IO::Select->select(
            $r{eof} ? undef : $sel_r,
            length $out ? $sel_w : undef, undef, 0.2);

        if ($wr && @$wr) {
            my $n = syswrite($sock, $out, 65536);
            if (defined $n) {
                substr($out, 0, $n) = '';
            } elsif (!$!{EAGAIN} && !$!{EWOULDBLOCK}) {
                $r{error} = "write: $!";
                $out = '';
                $sent = $send;
            }
        }

        if ($rd && @$rd) {
            my $n = sysread($sock, my $buf, 262144);
            if (!defined $n) {
                next if $!{EAGAIN} || $!{EWOULDBLOCK};
                $r{error} = "read: $!";
                $r{eof} = 1;
            } elsif ($n == 0) {
                $r{eof} = 1;
            } else {
                $sha->add($buf);
                $r{data} .= substr($buf, 0, 65536 - length $r{data})
                    if length $r{data} < 65536;
                $r{len} += $n;
            }
        }
    }

    $r{error} //= 'timeout' unless $r{eof};
    $r{sha} = $sha->hexdigest;
    $r{sent} = $sent;
    return \%r;
}

# A command on a new connection, everything read until the peer closes.
sub command {
    my ($port, $cmd, %opts) = @_;
    my $s = connect_tcp($port) or return { error => "connect: $!" };
    return transfer($s, $cmd, %opts);
}

# VmRSS of $pid in KiB.
sub vm_rss {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)\s+kB/;
    }
    return undef;
}

# How many descriptors $pid holds (-1: it is gone).
sub fd_count {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return -1;
    return scalar grep { /^\d+$/ } readdir $dh;
}

# The worker processes of the test's nginx.  (Not "use TunnelTest": the
# services and loadgen.pl load this module too.)
sub workers {
    my ($t) = @_;
    my $master = $t->{master} or return ();
    return TunnelTest::_children($master);
}

1;
