package TunnelRaw;

# The wire protocol by hand, for tests that misbehave on purpose: yamux
# frames (PROTOCOL.md §2), control messages (§3, core/tunnel_msg.h), a raw
# session that says hello and binds like the client and then does whatever
# the test wants, a TLS ClientHello with any server name, and a probe that
# keeps asking a real tunnel for its service while a test attacks nginx.
# See the POD at the end.

use strict;
use warnings;

use Exporter qw(import);
use IO::Select;
use IO::Socket::IP;
use POSIX ();
use Test::More ();
use TunnelService qw(service workers);
use TunnelTest qw(DEVTOKEN);
use Socket qw(AF_INET IPPROTO_TCP SOL_SOCKET SO_RCVBUF TCP_NODELAY inet_aton
    pack_sockaddr_in);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(frame data_frame msg parse_msg client_hello
    probe_start probe_wait probe_stop probe_ok bystander_start bystander_stop
    hostile_start
    DATA WINDOW PING GOAWAY SYN ACK FIN RST);

use constant {
    DATA => 0, WINDOW => 1, PING => 2, GOAWAY => 3,
    SYN => 1, ACK => 2, FIN => 4, RST => 8,
};

our %TYPE = (hello => 1, welcome => 2, error => 3, bind => 4, bound => 5,
    bind_error => 6, unbind => 7, unbound => 8, notice => 9, stream => 10);
our %TYPE_NAME = reverse %TYPE;

our %TAG = (version => 1, heartbeat_ms => 2, code => 3, request_id => 4,
    kind => 5, port => 6, tunnel_id => 7, remote_port => 8,
    max_streams => 9, token => 16, client_name => 17, client_version => 18,
    session_id => 19, message => 20, name => 21, url => 22,
    remote_addr => 23, server_name => 24, instance => 25);
our %TAG_NAME = reverse %TAG;

our %KIND = (http => 1, tls => 2, tcp => 3);

my %INT = map { $_ => 1 } qw(version heartbeat_ms code request_id kind port
    tunnel_id remote_port max_streams);


### Frames and messages

# A 12-byte yamux header, then $payload if given (it does not set the
# length: a test may lie about it).
sub frame {
    my ($type, $flags, $id, $len, $payload) = @_;
    return pack('CCnNN', 0, $type, $flags, $id, $len) . ($payload // '');
}

sub data_frame {
    my ($id, $payload, $flags) = @_;
    return frame(DATA, $flags // 0, $id, length $payload, $payload);
}

# A control message: msg('hello', version => 1, token => '...').  Field
# names or numeric tags; integers as 4 bytes unless given as [bytes].
sub msg {
    my ($type, @fields) = @_;
    my $body = pack('C', $TYPE{$type} // $type);

    while (my ($k, $v) = splice @fields, 0, 2) {
        my $tag = $TAG{$k} // $k;
        $v = ref $v ? $v->[0] : $INT{$TAG_NAME{$tag} // ''}
            ? pack('N', $v) : $v;
        $body .= pack('Cn', $tag, length $v) . $v;
    }

    return pack('n', length $body) . $body;
}

# One message from the front of $$buf (removed from it): a hash with
# "type" (a name) and the fields by name; undef if incomplete.
sub parse_msg {
    my ($buf) = @_;
    return undef if length $$buf < 2;
    my $total = 2 + unpack('n', $$buf);
    return undef if length $$buf < $total;

    my $m = substr($$buf, 0, $total, '');
    my $type = unpack('C', substr($m, 2, 1));
    my %r = (type => $TYPE_NAME{$type} // $type);

    for (my $pos = 3; $pos + 3 <= $total; ) {
        my ($tag, $len) = unpack('Cn', substr($m, $pos, 3));
        my $v = substr($m, $pos + 3, $len);
        $pos += 3 + $len;
        my $name = $TAG_NAME{$tag} // $tag;
        if ($INT{$name}) {
            my $n = 0;
            $n = $n * 256 + $_ for unpack('C*', $v);
            $v = $n;
        }
        $r{$name} = $v;
    }

    return \%r;
}


### A raw session

# Connects to the registration port.  Options: timeout (5s, for each
# wait), pong (1: answer the server's pings), ack (1: accept the streams
# the server opens, with an ACK that announces no more than 256 KiB),
# no_credit (0: give the control stream's window back as it is read),
# rcvbuf (SO_RCVBUF, set before connecting).
sub connect {
    my ($class, $port, %opts) = @_;

    my $sock;

    if ($opts{rcvbuf}) {
        # before connect, so that the window it announces stays small
        $sock = IO::Socket::IP->new(Proto => 'tcp', Family => AF_INET)
            or return undef;
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $opts{rcvbuf});
        $sock->connect(pack_sockaddr_in($port, inet_aton('127.0.0.1')))
            or return undef;

    } else {
        $sock = IO::Socket::IP->new(PeerHost => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => 5) or return undef;
    }

    # answers come at once: no Nagle delay between small messages
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $sock->blocking(0);

    return bless {
        sock    => $sock,
        in      => '',          # bytes read, not yet a whole frame
        ctl     => '',          # control stream bytes, not yet a message
        msgs    => [],          # control messages received
        opened  => [],          # stream ids the server opened
        bytes   => {},          # stream id => payload bytes received
        fin     => {},          # stream id => FIN or RST received
        timeout => $opts{timeout} // 5,
        pong    => $opts{pong} // 1,
        ack     => $opts{ack} // 1,
        no_credit => $opts{no_credit} // 0,
        eof     => 0,
    }, $class;
}

sub sock { $_[0]{sock} }

# Writes all of $data, waiting at most $timeout seconds (the object's)
# for room.  Returns the number of bytes written: less on a timeout or an
# error ($self->{error} says which).
sub send {
    my ($self, $data, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    my $sel = IO::Select->new($self->{sock});
    my $done = 0;

    local $SIG{PIPE} = 'IGNORE';
    local $self->{sending} = 1;

    while ($done < length $data) {
        my $n = syswrite($self->{sock}, $data, 1 << 20, $done);
        if (defined $n) {
            $done += $n;
            next;
        }
        if (!$!{EAGAIN} && !$!{EWOULDBLOCK}) {
            $self->{error} = "write: $!";
            $self->{eof} = 1 if $!{EPIPE} || $!{ECONNRESET};
            last;
        }
        my $left = $deadline - time;
        if ($left <= 0) {
            $self->{error} = 'write: timeout';
            last;
        }
        # what the server sends meanwhile is read, or it may stop reading
        $self->_read(0);
        $sel->can_write($left < 0.05 ? $left : 0.05);
    }

    $self->{sending} = 0;
    $self->_reply;
    return $done;
}

# Reads what is there (waiting up to $wait seconds for the first byte) and
# handles every whole frame.  Returns false at EOF.
sub _read {
    my ($self, $wait) = @_;
    return 0 if $self->{eof};

    if ($wait && $wait > 0) {
        IO::Select->new($self->{sock})->can_read($wait) or return 1;
    }

    while (1) {
        my $n = sysread($self->{sock}, my $buf, 1 << 20);
        if (!defined $n) {
            last if $!{EAGAIN} || $!{EWOULDBLOCK};
            $self->{error} = "read: $!";
            $self->{eof} = 1;
            last;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            last;
        }
        $self->{in} .= $buf;
        $self->{received} += $n;
        last if $n < (1 << 20);
    }

    $self->_frames;
    return !$self->{eof};
}

sub _frames {
    my ($self) = @_;
    my $reply = '';

    while (length $self->{in} >= 12) {
        my ($v, $type, $flags, $id, $len) = unpack('CCnNN', $self->{in});
        my $size = 12 + ($type == DATA ? $len : 0);
        last if length $self->{in} < $size;
        my $payload = $type == DATA && ($id == 1 || $self->{keep_data})
            ? substr($self->{in}, 12, $size - 12) : '';
        substr($self->{in}, 0, $size) = '';

        push @{$self->{frames}}, [$type, $flags, $id, $len]
            if $self->{keep_frames};

        if ($type == PING) {
            $reply .= frame(PING, ACK, 0, $len)
                if ($flags & SYN) && $self->{pong};
            $self->{pongs}++ if $flags & ACK;
            next;
        }

        if ($type == GOAWAY) {
            $self->{goaway} = $len;
            next;
        }

        if ($flags & SYN && $id != 1) {
            push @{$self->{opened}}, $id;
            $self->{bytes}{$id} //= 0;
            $reply .= frame(WINDOW, ACK, $id, 0) if $self->{ack};
        }

        if ($type == DATA && $id == 1) {
            # credit the server's window as a client does, unless told not
            $self->{ctl_unacked} += $len;
            if ($self->{ctl_unacked} >= 65536 && !$self->{no_credit}) {
                $reply .= frame(WINDOW, 0, 1, $self->{ctl_unacked});
                $self->{ctl_unacked} = 0;
            }
            $self->{ctl} .= $payload;
            while (my $m = parse_msg(\$self->{ctl})) {
                push @{$self->{msgs}}, $m;
            }
        } elsif ($type == DATA) {
            $self->{bytes}{$id} += $len;
            $self->{data_bytes} += $len;
            $self->{payload}{$id} .= $payload if $self->{keep_data};
        }

        $self->{fin}{$id} = $flags & (FIN | RST) if $flags & (FIN | RST);
    }

    $self->{reply} .= $reply;
    $self->_reply unless $self->{sending};
}

# Sends the answers due, between whole frames: never inside what send()
# is writing.
sub _reply {
    my ($self) = @_;
    return unless length($self->{reply} // '');
    local $SIG{PIPE} = 'IGNORE';
    # small answers: the socket buffer takes them (or the peer is gone)
    syswrite($self->{sock}, $self->{reply});
    $self->{reply} = '';
}

# Reads and handles frames for $seconds (or until EOF).
sub pump {
    my ($self, $seconds) = @_;
    my $deadline = time + $seconds;
    while (1) {
        $self->_read($deadline - time) or last;
        last if time >= $deadline;
    }
    return !$self->{eof};
}

# The next control message from the server, within the timeout; undef
# if none came (or the connection ended first).
sub message {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});

    while (!@{$self->{msgs}}) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        $self->_read($left) or last;
    }

    return shift @{$self->{msgs}};
}

# Opens the control stream and says hello.  Returns the answer (welcome
# or error).  Options: token, instance, client_name, version, extra (more
# fields, an array).
sub hello {
    my ($self, %o) = @_;
    my $m = msg('hello', version => $o{version} // 1, token => $o{token},
        client_name => $o{client_name} // 'raw',
        client_version => '0', instance => $o{instance} // "raw$$",
        @{$o{extra} // []});
    $self->send(frame(WINDOW, SYN, 1, 0) . data_frame(1, $m));
    return $self->message;
}

# Sends BIND and returns the answer (bound or bind_error).
sub bind {
    my ($self, $kind, %o) = @_;
    my $id = ++$self->{request};
    my @f = (request_id => $id, kind => $KIND{$kind} // $kind);
    push @f, name => $o{name} if defined $o{name};
    push @f, port => $o{port} if defined $o{port};
    $self->send(data_frame(1, msg('bind', @f)));
    return $self->message;
}

# A well-behaved start: connect, hello, welcome; undef if refused.
sub session {
    my ($class, $port, %o) = @_;
    my $self = $class->connect($port, %o) or return undef;
    my $w = $self->hello(%o);
    return undef unless $w && $w->{type} eq 'welcome';
    $self->{welcome} = $w;
    return $self;
}

# Waits for the server to close the connection; returns true if it did
# within $timeout seconds (answering nothing meanwhile).
sub closed {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    local $self->{pong} = 0;
    while (!$self->{eof} && time < $deadline) {
        $self->_read($deadline - time);
    }
    return $self->{eof};
}

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{eof} = 1;
}


### The public side

# A TLS 1.2 ClientHello record.  Options: sni (a server name; none if
# undef), sni_ext (the raw server_name extension data instead), ext (more
# raw extensions), ext_len (the extensions' length to claim).
sub client_hello {
    my (%o) = @_;
    my $ext = '';

    my $sni = $o{sni_ext};
    if (!defined $sni && defined $o{sni}) {
        my $list = pack('Cn', 0, length $o{sni}) . $o{sni};
        $sni = pack('n', length $list) . $list;
    }
    $ext .= pack('nn', 0, length $sni) . $sni if defined $sni;
    $ext .= $o{ext} // '';

    my $body = pack('n', 0x0303) . ("\x5a" x 32) . pack('C', 0)
        . pack('n', 2) . pack('n', 0x002f) . pack('CC', 1, 0)
        . pack('n', $o{ext_len} // length $ext) . $ext;
    my $hs = pack('C', 1) . substr(pack('N', length $body), 1) . $body;

    return pack('Cnn', 0x16, 0x0301, length $hs) . $hs;
}


### A probe

# Forks a process that asks $port for "hello" every $interval seconds
# (0.05) and expects $expect back; each answer is a line in the test
# directory's probe-<name>.log.  Option ask: a sub that asks instead (and
# returns the answer).  Returns a handle for probe_stop.
sub probe_start {
    my ($t, $name, $port, $expect, %o) = @_;
    my $file = $t->testdir . "/probe-$name.log";
    my $interval = $o{interval} // 0.05;

    my $pid = fork() // die "fork: $!\n";

    if ($pid == 0) {
        require TunnelService;
        open my $fh, '>>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        $SIG{TERM} = sub { POSIX::_exit(0) };
        while (1) {
            my $start = time;
            my $r = $o{ask} ? { data => scalar $o{ask}->() }
                : TunnelService::command($port, 'hello', timeout => 3);
            my $ok = ($r->{data} // '') eq $expect;
            printf $fh "%s %.3f %s\n", $ok ? 'ok' : 'fail', time - $start,
                $ok ? '' : ($r->{error} // '') . ' ' . ($r->{data} // '');
            sleep $interval;
        }
    }

    return { pid => $pid, file => $file };
}

# Waits until the probe has $n answers in all (at most $timeout seconds).
sub probe_wait {
    my ($p, $n, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (time < $deadline) {
        open my $fh, '<', $p->{file} or last;
        my @lines = <$fh>;
        return 1 if @lines >= $n;
        sleep 0.05;
    }
    return 0;
}

# Stops the probe; returns (answers that were right, wrong ones as text,
# the slowest answer in seconds).
sub probe_stop {
    my ($p) = @_;
    kill TERM => $p->{pid};
    waitpid($p->{pid}, 0);

    open my $fh, '<', $p->{file} or return (0, ['no probe log'], 0);
    my ($ok, @bad, $slowest) = (0);
    $slowest = 0;
    while (<$fh>) {
        chomp;
        my ($res, $took) = split / /;
        $slowest = $took if $took > $slowest;
        $res eq 'ok' ? $ok++ : push @bad, $_;
    }
    return ($ok, \@bad, $slowest);
}

# Waits for 5 answers more, stops the probe: one test, that it had $min
# right answers or more and no wrong one ("$what served all along").
# Returns the slowest answer in seconds.
sub probe_ok {
    my ($p, $min, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    probe_wait($p, 5);
    my ($ok, $bad, $slowest) = probe_stop($p);
    Test::More::ok($ok >= $min && !@$bad,
        sprintf('%s served all along: %d answers, %d wrong, slowest %.2fs',
            $what, $ok, scalar @$bad, $slowest))
        or Test::More::diag(Test::More::explain($bad));
    return $slowest;
}

# Forks a raw session that behaves: hello, a bind of $kind (tcp), then it
# answers pings until stopped.  Returns a handle for bystander_stop, once
# the bind has been answered.
sub bystander_start {
    my ($t, $name, $port, $kind, %o) = @_;
    my $file = $t->testdir . "/bystander-$name.log";

    my $pid = fork() // die "fork: $!\n";

    if ($pid == 0) {
        open my $fh, '>>', $file or POSIX::_exit(1);
        $fh->autoflush(1);
        my $stop = 0;
        $SIG{TERM} = sub { $stop = 1 };
        my $r = TunnelRaw->session($port, %o);
        my $b = $r && $r->bind($kind);
        print $fh 'first ', ($b ? $b->{type} : 'none'), "\n";
        while ($r && !$stop && $r->pump(0.1)) { }
        if ($r && !$r->{eof}) {
            $b = $r->bind($kind);
            print $fh 'then ', ($b ? $b->{type} : 'none'), "\n";
        } else {
            print $fh "closed\n";
        }
        POSIX::_exit(0);
    }

    my $p = { pid => $pid, file => $file, t => $t };
    $t->wait_for_file_match($file, qr/^first/m, 10);
    return $p;
}

# Stops it: returns its log ("first bound", then "then bound" if it was
# still up and could bind again, or "closed").
sub bystander_stop {
    my ($p) = @_;
    kill TERM => $p->{pid};
    waitpid($p->{pid}, 0);
    return $p->{t}->read_file($p->{file});
}


### A test that attacks the registration port

# nginx with one worker (the attacks reach the worker that serves the real
# tunnel) and the registration server "reg" of TunnelTest's
# registration_config, with tcp ports, tunnel_handshake_timeout 2s and
# tunnel_heartbeat 1s (%o: more for registration_config; main and reg are
# added to); a real client's tcp tunnel, asked by a probe all along; a raw
# session that behaves (bystander "good").  One test, that the client has
# its tunnel.  Returns the port "reg", the probe, the bystander and the
# workers.
sub hostile_start {
    my ($t, %o) = @_;
    my $token = DEVTOKEN;
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    $t->write_config($t->registration_config(
        tcp => $t->port_range('tcp', 4), %o,
        main => "worker_processes 1;\n\n" . ($o{main} // ''),
        reg => "tunnel_handshake_timeout 2s;\ntunnel_heartbeat 1s;\n"
            . ($o{reg} // '')));
    $t->run;

    my $reg = $t->port('reg');
    my @workers = workers($t);
    my $svc = service($t, 'svc', 'tcp', 'local');

    $t->tunnel('client', 'tcp', $svc, '--server', "127.0.0.1:$reg",
        '--token', $token, '--plain');
    my ($port) = ($t->tunnel_url('client') // '') =~ /:(\d+)$/;
    Test::More::ok($port, 'a real client has a tcp tunnel')
        or Test::More::diag($t->output('client'));

    my $probe = probe_start($t, 'client', $port, "hello from local\n");
    my $good = bystander_start($t, 'good', $reg, 'tcp', token => $token,
        instance => 'good');

    return ($reg, $probe, $good, @workers);
}

1;

__END__

=head1 NAME

TunnelRaw - ngx_tunnel's wire protocol by hand, for hostile tests

=head1 SYNOPSIS

    use TunnelRaw qw(frame data_frame msg SYN WINDOW);

    my $r = TunnelRaw->session($t->port('reg'), token => $token)
        or die;                                   # hello, welcome
    my $b = $r->bind('tcp');                      # bound or bind_error
    $r->send(frame(WINDOW, SYN, 2, 0));           # misbehave
    ok($r->closed(3), 'nginx closes the session');

=head1 FUNCTIONS

frame($type, $flags, $id, $len[, $payload]), data_frame($id, $payload
[, $flags]), msg($type, field => value, ...), parse_msg(\$buf),
client_hello(sni =>, sni_ext =>, ext =>, ext_len =>).

probe_start($t, $name, $port, $expect[, ask => sub, interval => s]),
probe_wait($probe, $n[, $timeout]) and probe_stop($probe) (returns the
count of right answers, the wrong ones, the slowest in seconds): a process
that asks a real tunnel for its service all along a test;
probe_ok($probe, $min, $what) stops it as one test.

bystander_start($t, $name, $port, $kind, token => ...) and
bystander_stop($b) (returns "first bound\nthen bound\n" if the session
stayed up): a raw session that behaves, answering pings, all along.

hostile_start($t, %config) (returns the port "reg", the probe, the
bystander, the workers): nginx, a real client's tunnel and its probe, a
bystander, for a test that attacks the registration port.

Constants DATA WINDOW PING GOAWAY SYN ACK FIN RST.

=head1 METHODS

connect($port, timeout =>, pong =>, ack =>, no_credit =>, rcvbuf =>),
session($port, token =>, instance =>, ...), hello(token =>, ...),
bind($kind, name =>, port =>), send($bytes[, $timeout]),
message([$timeout]), pump($seconds), closed([$timeout]), close, sock.

Fields: welcome, msgs, opened (stream ids the server opened), bytes
(payload per stream), data_bytes, fin, goaway (its code), eof, error.
A session answers pings (pong), accepts the streams nginx opens with an
ACK that leaves their window at 256 KiB (ack), and gives the control
stream's window back as it reads (unless no_credit); it never gives
window back on any other stream.

=cut
