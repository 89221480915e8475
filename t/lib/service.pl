#!/usr/bin/perl

# A local service behind a tunnel, for the integration tests:
#
#   service.pl tcp <port> <label>
#   service.pl tls <port> <label> <cert> <key>
#
# listens on 127.0.0.1:<port>, prints "ready" and serves the commands of
# TunnelService.pm, one child process per connection.

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
$label //= 'service';

$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };

my $ls = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port,
    Proto => 'tcp', Listen => 1024, ReuseAddr => 1)
    or die "listen on $port: $@\n";

if ($mode eq 'tls') {
    require IO::Socket::SSL;
}

$| = 1;
print "ready $port\n";

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
    eval { serve($c) };
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
