#!/usr/bin/perl

# A local service behind a tunnel, for the integration tests:
#
#   service.pl tcp <port> <label>
#   service.pl tls <port> <label> <cert> <key>
#   service.pl relay <port> <label> <target port>
#   service.pl echo <port>
#
# listens on 127.0.0.1:<port>, prints "ready" and serves the commands of
# TunnelService.pm, one child process per connection.  "echo" sends every
# byte back, no command first, to many connections at once from a single
# process.
#
# A relay carries a tunnel client's plain (no TLS) registration connection to
# nginx, whole yamux frames at a time.  SIGUSR1 to its process group cuts the
# connections open then, as a network that fails silently would: nothing
# more reaches the client, what the client sends is dropped, and nginx's
# pings are answered by the relay, so that nginx goes on seeing a live
# session.  SIGUSR2 resets them instead, both ways, as a network that
# breaks the connections; the relay goes on accepting new ones.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use Digest::SHA;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SHUT_WR);
use TunnelService qw(data_block);

my ($mode, $port, $label, $cert, $key) = @ARGV;
my $target = $cert;             # relay
$label //= 'service';

$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };

my $ls = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port,
    Proto => 'tcp', Listen => 1024, ReuseAddr => 1)
    or die "listen on $port: $@\n";

if ($mode eq 'tls') {
    require IO::Socket::SSL;
}

if ($mode eq 'relay') {
    $SIG{USR1} = 'IGNORE';
    $SIG{USR2} = 'IGNORE';
}

$| = 1;
print "ready $port\n";

echo_all() if $mode eq 'echo';

while (1) {
    my $c = $ls->accept;
    unless ($c) {
        next if $!{EINTR};
        die "accept: $!\n";
    }

    my $pid = fork;
    if (!defined $pid) {
        warn "fork: $!\n";
        close $c;
        next;
    }

    if ($pid) {
        close $c;
        next;
    }

    close $ls;
    $SIG{CHLD} = 'DEFAULT';
    eval { $mode eq 'relay' ? relay($c) : serve($c) };
    warn "serve: $@" if $@;
    POSIX::_exit(0);
}


sub serve {
    my ($c) = @_;

    if ($mode eq 'tls') {
        IO::Socket::SSL->start_SSL($c, SSL_server => 1,
            SSL_cert_file => $cert, SSL_key_file => $key)
            or die "TLS handshake: " . IO::Socket::SSL::errstr() . "\n";
    }

    my $buf = '';
    while ($buf !~ /\n/) {
        my $n = sysread($c, $buf, 65536, length $buf);
        return unless $n;
    }

    $buf =~ s/^([^\n]*)\n//;
    my ($cmd, @args) = split ' ', $1;

    if ($cmd eq 'hello') {
        write_all($c, "hello from $label\n");

    } elsif ($cmd eq 'echo') {
        write_all($c, $buf) if length $buf;
        while (sysread($c, $buf, 65536)) {
            write_all($c, $buf) or last;
        }

    } elsif ($cmd eq 'sink' || $cmd eq 'stall') {
        sleep $args[0] if $cmd eq 'stall';
        my $sha = Digest::SHA->new(256);
        my $len = length $buf;
        $sha->add($buf);
        while (my $n = sysread($c, $buf, 65536)) {
            $sha->add($buf);
            $len += $n;
        }
        write_all($c, $sha->hexdigest . " $len\n");

    } elsif ($cmd eq 'source') {
        my ($n, $seed) = @args;
        for (my $i = 0; $n > 0; $i++) {
            my $b = data_block($seed, $i);
            $b = substr($b, 0, $n) if $n < length $b;
            write_all($c, $b) or last;
            $n -= length $b;
        }

    } else {
        write_all($c, "unknown command\n");
    }

    if ($mode eq 'tls') {
        $c->close(SSL_fast_shutdown => 1);
    } else {
        shutdown($c, SHUT_WR);

        # wait for the peer's EOF, so that nothing we sent is reset; what
        # comes after our FIN is reported on stdout
        my $sha = Digest::SHA->new(256);
        my $len = 0;
        while (my $n = sysread($c, $buf, 65536)) {
            $sha->add($buf);
            $len += $n;
        }
        print "after FIN: $len " . $sha->hexdigest . "\n" if $len;
        close $c;
    }
}

sub write_all {
    my ($c, $data) = @_;
    while (length $data) {
        my $n = syswrite($c, $data);
        return 0 unless defined $n;
        substr($data, 0, $n) = '';
    }
    return 1;
}

sub relay {
    my ($c) = @_;
    my ($cut, $drop) = (0, 0);

    local $SIG{USR1} = sub { $cut = 1 };
    local $SIG{USR2} = sub { $drop = 1 };

    my $u = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $target,
        Proto => 'tcp') or die "relay: connect to $target: $@\n";

    require IO::Select;
    my $sel = IO::Select->new($c, $u);
    my %in = ($c => '', $u => '');
    my ($c_open, $u_open) = (1, 1);

    while ($u_open) {
        my @ready = $sel->can_read(1);

        if ($drop) {
            # linger 0: close() sends a reset
            for my $s ($c, $u) {
                setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(),
                    pack('ii', 1, 0));
                close $s;
            }
            return;
        }

        for my $s (@ready) {
            my $n = sysread($s, $in{$s}, 65536, length $in{$s});

            if (!$n) {
                $sel->remove($s);
                if ($s == $c) {
                    $c_open = 0;
                    shutdown($u, SHUT_WR) unless $cut;
                } else {
                    $u_open = 0;
                }
                next;
            }

            # whole frames: a cut never falls inside one
            while (length $in{$s} >= 12) {
                my ($type, $flags, $sid, $len) =
                    unpack('x C n N N', $in{$s});
                my $size = 12 + ($type == 0 ? $len : 0);
                last if length $in{$s} < $size;
                my $frame = substr($in{$s}, 0, $size, '');

                if (!$cut) {
                    write_all($s == $c ? $u : $c, $frame);

                } elsif ($s == $u && $type == 2 && ($flags & 1)) {
                    write_all($u, pack('C C n N N', 0, 2, 2, 0, $len));
                }
            }
        }

        last if !$c_open && !$cut;
    }
}

sub echo_all {
    require IO::Select;
    $ls->blocking(0);
    my $rd = IO::Select->new($ls);
    my $wr = IO::Select->new;
    my (%out, %eof);

    while (1) {
        my ($r, $w) = IO::Select->select($rd, $wr->count ? $wr : undef,
            undef, 1);

        for my $s (@{ $r // [] }) {
            if ($s == $ls) {
                while (my $c = $ls->accept) {
                    $c->blocking(0);
                    $rd->add($c);
                    $out{$c} = '';
                }
                next;
            }

            my $n = sysread($s, my $buf, 65536);
            next if !defined $n && $!{EAGAIN};

            if (!$n) {
                $rd->remove($s);
                $eof{$s} = 1;
            } else {
                $out{$s} .= $buf;
            }

            $wr->add($s);
        }

        for my $s (@{ $w // [] }) {
            if (length $out{$s}) {
                my $n = syswrite($s, $out{$s});
                if (!defined $n) {
                    next if $!{EAGAIN};
                    $out{$s} = '';
                    $eof{$s} = 1;
                    $rd->remove($s);
                } else {
                    substr($out{$s}, 0, $n) = '';
                }
            }

            next if length $out{$s};
            $wr->remove($s);

            if ($eof{$s}) {
                delete $out{$s};
                delete $eof{$s};
                close $s;
            }
        }

        # stop reading while much is waiting to go out
        for my $s ($rd->handles) {
            next if $s == $ls;
            $rd->remove($s) if length $out{$s} > 1048576;
        }
        for my $s ($wr->handles) {
            $rd->add($s) if !$eof{$s} && length $out{$s} <= 1048576
                && !$rd->exists($s);
        }
    }
}
