#!/usr/bin/perl

# Public traffic for the reload, fault and soak tests: one command over and
# over, from several processes at once, for a while; one line per try on
# stdout ("ok <seconds> <start>" or "fail <seconds> <start> <why>", start
# in Unix time), then "done ok=N fail=M".
#
#   loadgen.pl [options] hello PORT          service.pl's "hello": a line back
#   loadgen.pl [options] echo PORT BYTES     service.pl's "echo": BYTES of
#                                            TunnelService's data back, by hash
#   loadgen.pl [options] tls PORT NAME CA    "hello" over TLS, SNI NAME,
#                                            the certificate checked with CA
#   loadgen.pl [options] http PORT HOST [PATH]   GET, HTTP/1.0: a 200
#
# Options: -c N processes (1), -t SECONDS in all (10), -n TRIES per process
# (no limit), -r BYTES/s per transfer (echo: no limit), -w SECONDS a try may
# take (30), -p SECONDS pause between tries (0; 0.05 after a failure).
# TERM: each process ends its try, then stops.

use strict;
use warnings;

use FindBin;
use lib $FindBin::Bin;

use Digest::SHA;
use Getopt::Std;
use IO::Select;
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Socket qw(SHUT_WR);
use Time::HiRes qw(time sleep);
use TunnelService qw(data_block data_sha);

my %o;
getopts('c:t:n:r:w:p:', \%o) or die "usage: see the top of $0\n";
my ($mode, $port, @args) = @ARGV;
die "usage: see the top of $0\n" unless $mode && $port;

my $procs = $o{c} // 1;
my $end = time + ($o{t} // 10);
my $tries = $o{n} // 0;
my $rate = $o{r} // 0;
my $wait = $o{w} // 30;
my $pause = $o{p} // 0;

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
$SIG{PIPE} = 'IGNORE';
$| = 1;

my %kids;
for my $k (1 .. $procs) {
    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        %kids = ();
        run($k);
        POSIX::_exit(0);
    }
    $kids{$pid} = 1;
}

$SIG{TERM} = $SIG{INT} = sub { kill TERM => keys %kids };
while (%kids) {
    my $pid = waitpid(-1, 0);
    last if $pid < 0;
    delete $kids{$pid};
}

exit 0;


sub run {
    my ($k) = @_;
    my ($ok, $fail, $n) = (0, 0, 0);
    srand($$ ^ time);

    while (!$stop && time < $end && (!$tries || $n < $tries)) {
        my $start = time;
        my $why = eval { try_once($k, $n) };
        $why = "died: $@" if $@;
        $why =~ s/\s+/ /g if defined $why;
        my $took = time - $start;
        $n++;

        if (defined $why) {
            $fail++;
            printf "fail %.3f %.3f %s\n", $took, $start, $why;
        } else {
            $ok++;
            printf "ok %.3f %.3f\n", $took, $start;
        }

        # a tunnel that is down fails at once: no spinning meanwhile
        sleep($pause ? $pause : defined $why ? 0.05 : 0);
    }

    print "done ok=$ok fail=$fail\n";
}

# undef if it went well, else why not
sub try_once {
    my ($k, $n) = @_;

    if ($mode eq 'tls') {
        require IO::Socket::SSL;
        my ($name, $ca) = @args;
        my $s = IO::Socket::SSL->new(PeerHost => '127.0.0.1',
            PeerPort => $port, Timeout => $wait, SSL_hostname => $name,
            SSL_ca_file => $ca, SSL_verifycn_name => $name,
            SSL_verifycn_scheme => 'http')
            or return 'tls: ' . (IO::Socket::SSL::errstr() || $!);
        print $s "hello\n";
        my $a = read_all($s, time + $wait);
        close $s;
        return $a =~ /^hello from / ? undef : "answer: '$a'";
    }

    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => $wait) or return "connect: $!";

    if ($mode eq 'hello') {
        syswrite($s, "hello\n");
        my $a = read_all($s, time + $wait);
        return $a =~ /^hello from / ? undef : "answer: '$a'";
    }

    if ($mode eq 'http') {
        my ($host, $path) = @args;
        syswrite($s, 'GET ' . ($path // '/') . " HTTP/1.0\r\nHost: $host"
            . "\r\n\r\n");
        my $a = read_all($s, time + $wait);
        my ($status) = $a =~ m{^HTTP/1\.\d (\d+)};
        return undef if defined $status && $status == 200;
        my ($head) = $a =~ /^(.*?)\r\n\r\n/s;
        my ($err) = ($head // '') =~ /^X-Tunnel-Error: (.*?)\r?$/mi;
        return 'status ' . ($status // "none: '" . substr($a, 0, 80) . "'")
            . (defined $err ? " ($err)" : '');
    }

    if ($mode eq 'echo') {
        return echo($s, $args[0], $k * 1000003 + $n);
    }

    die "unknown mode $mode\n";
}

sub read_all {
    my ($s, $deadline) = @_;
    my $a = '';
    my $sel = IO::Select->new($s);
    while (1) {
        my $left = $deadline - time;
        return $a . ' (timeout)' if $left <= 0;
        next unless $sel->can_read($left);     # (or a signal: TERM)
        my $n = sysread($s, $a, 65536, length $a);
        return $a unless $n;
    }
}

# sends $size bytes of the stream of $seed (at $rate bytes/s), reads them
# back at once; both ways checked by hash
sub echo {
    my ($s, $size, $seed) = @_;
    my $deadline = time + $wait;
    my $began = time;
    my $sha = Digest::SHA->new(256);
    my ($out, $i, $sent, $got, $shut) = ("echo\n", 0, 0, 0, 0);

    $s->blocking(0);
    my $sel = IO::Select->new($s);

    while (time < $deadline) {
        my $allowed = $rate ? int((time - $began) * $rate) + 16384 : $size;
        if (length $out < 65536 && $sent < $size && $sent < $allowed) {
            my $k = $size - $sent;
            $k = 65536 - $sent % 65536 if $k > 65536 - $sent % 65536;
            $k = $allowed - $sent if $k > $allowed - $sent;
            my $blk = data_block($seed, int($sent / 65536));
            $out .= substr($blk, $sent % 65536, $k);
            $sent += $k;
        }

        if (!length $out && $sent >= $size && !$shut) {
            shutdown($s, SHUT_WR);
            $shut = 1;
        }

        my ($r, $w) = IO::Select->select($sel, length $out ? $sel : undef,
            undef, 0.05);

        if ($w && @$w) {
            my $k = syswrite($s, $out, 65536);
            if (defined $k) {
                substr($out, 0, $k) = '';
            } elsif (!$!{EAGAIN}) {
                return "write after $sent bytes: $!";
            }
        }

        if ($r && @$r) {
            my $k = sysread($s, my $buf, 262144);
            if (!defined $k) {
                next if $!{EAGAIN};
                return "read after $got of $size bytes: $!";
            }
            if ($k == 0) {
                return "closed after $got of $size bytes" if $got != $size;
                return $sha->hexdigest eq data_sha($seed, $size)
                    ? undef : 'the data came back changed';
            }
            $sha->add($buf);
            $got += $k;
        }
    }

    return "timeout after $got of $size bytes back";
}
