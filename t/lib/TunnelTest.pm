package TunnelTest;

# A small harness for ngx_tunnel's integration tests, in the manner of
# nginx-tests: a config in the test, the real nginx on free loopback ports,
# plain Test::More assertions.  See the POD at the end.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::IP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(request http_get http_post wait_for_file_match DEVTOKEN
    rss_unmeasured);

# the token of registration_config's token file unless told otherwise
use constant DEVTOKEN => 'devtoken-0123456789abcdef';

# Why memory is not measured in this run, or '': AddressSanitizer keeps
# freed memory in quarantine (make test-asan), so RSS says nothing then.
sub rss_unmeasured {
    my $nginx = $ENV{NGINX_BINARY} // '/usr/sbin/nginx';
    return `$nginx -V 2>&1` =~ /-fsanitize=[\w,]*address/
        ? "RSS not measured: $nginx is built with AddressSanitizer" : '';
}

my $ROOT = abs_path(dirname(__FILE__) . '/../..');

my %used_ports;                 # within this test file, never twice

# An interrupted test stops its nginx and processes first, then dies: a
# signal handler may run anywhere, DESTROY included, so it cleans up itself.
my %live;                       # the TunnelTest objects, weak references

for my $sig (qw(INT TERM HUP)) {
    next if $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub {
        $SIG{$sig} = 'IGNORE';
        $_ && $_->_cleanup for values %live;
        die "killed by SIG$sig\n";
    };
}


sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        nginx      => $ENV{NGINX_BINARY} // '/usr/sbin/nginx',
        module     => $ENV{TUNNEL_MODULE}
                      // "$ROOT/build/ngx_tunnel_module.so",
        client     => $ENV{TUNNEL_CLIENT} // "$ROOT/build/tunnel",
        log_level  => $opts{log_level} // $ENV{TUNNEL_TEST_LOG_LEVEL}
                      // 'info',
        dir        => tempdir('tunnel-test-XXXXXX', TMPDIR => 1),
        ports      => {},
        listen     => [],
        procs      => {},
        owner      => $$,
    }, $class;

    $live{$self} = $self;
    weaken($live{$self});

    # nginx opens <prefix>/logs/error.log before it reads its configuration
    # when built with the default paths (the ASan build)
    mkdir "$self->{dir}/logs";

    # As root, workers run as an unprivileged user (as in production, where
    # they cannot bind ports below 1024); they must be able to use the
    # directory, e.g. for unix sockets.
    if ($> == 0) {
        my ($name, $uid, $gid) = (getpwnam('www-data'))[0, 2, 3];
        ($name, $uid, $gid) = (getpwnam('nobody'))[0, 2, 3] unless $name;
        $self->{user} = $name . ' ' . getgrgid($gid);
        chown $uid, $gid, $self->{dir};
        chmod 0755, $self->{dir};
    }

    return $self;
}

sub testdir { $_[0]{dir} }

# Alert lines matching $re are what the test caused on purpose (say, a
# worker it killed): the final check leaves them out.
sub expect_alerts {
    my ($self, $re) = @_;
    $self->{expected_alerts} = $re;
    return $self;
}

# Plans $n tests plus the two that DESTROY adds (alerts, sanitizers).
sub plan {
    my ($self, $n) = @_;
    Test::More::plan(tests => $n + 2);
    $self->{checks} = 1;
    return $self;
}

# For tests without a plan: the final checks, then done_testing.
sub done_testing {
    my ($self) = @_;
    $self->_final_checks;
    Test::More::done_testing();
}


### Ports

sub port {
    my ($self, $name) = @_;
    return $self->{ports}{$name} //= _free_port();
}

sub _free_port {
    for (1 .. 100) {
        my $s = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => 0,
            Proto => 'tcp', Listen => 1)
            or die "cannot bind a free port: $@\n";
        my $port = $s->sockport;
        close $s;
        return $port unless $used_ports{$port}++;
    }
    die "no free port\n";
}

# "lo-hi": $count consecutive free ports below the ephemeral range, for
# tunnel_tcp_ports.
sub port_range {
    my ($self, $name, $count) = @_;
    return $self->{ranges}{$name} if $self->{ranges}{$name};

    BASE: for (1 .. 50) {
        my $lo = 20000 + int(rand(10000 - $count));
        for my $p ($lo .. $lo + $count - 1) {
            next BASE if $used_ports{$p};
            IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $p,
                Proto => 'tcp', ReuseAddr => 1) or next BASE;
        }
        $used_ports{$_} = 1 for $lo .. $lo + $count - 1;
        return $self->{ranges}{$name} = "$lo-" . ($lo + $count - 1);
    }
    die "no free range of $count ports\n";
}


### Configuration

sub _expand {
    my ($self, $text) = @_;
    $text =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $text =~ s/%%TESTDIR%%/$self->{dir}/g;
    return $text;
}

# The module lines: Debian's nginx has stream as a module, an nginx built
# from source with the module linked in (ASan build) needs neither line.
sub _load_modules {
    my ($self) = @_;
    my $v = `$self->{nginx} -V 2>&1`;
    my @lines;

    if ($v =~ /--with-stream=dynamic/) {
        my $stream = $ENV{TUNNEL_STREAM_MODULE}
            // '/usr/lib/nginx/modules/ngx_stream_module.so';
        push @lines, "load_module $stream;";
    }
    push @lines, "load_module $self->{module};" if $self->{module} ne '';
    return join("\n", @lines);
}

sub _config_text {
    my ($self, $text) = @_;
    my $d = $self->{dir};

    $text = $self->_expand($text);
    $text .= "\nevents {}\n" unless $text =~ /^\s*events\s*\{/m;

    # http temp files and access log in the test directory, not /var
    $text =~ s{^(\s*http\s*\{)}{$1
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path       $d/proxy_temp;
    fastcgi_temp_path     $d/fastcgi_temp;
    uwsgi_temp_path       $d/uwsgi_temp;
    scgi_temp_path        $d/scgi_temp;
    access_log            $d/access.log;
}m;

    my $user = $self->{user} ? "user $self->{user};\n" : '';

    return $self->_load_modules . "\n" . <<"EOF" . $text;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log $self->{log_level};
$user
EOF
}

sub write_config {
    my ($self, $text) = @_;
    my $conf = $self->_config_text($text);

    # the allocated ports nginx listens on: run() waits for them
    my %ours = reverse %{$self->{ports}};
    $self->{listen} = [ grep { $ours{$_} }
        $conf =~ /^\s*listen\s+(?:\S*:)?(\d+)(?![^;]*\budp\b)[^;]*;/mg ];

    # "master_process off": nginx serves in the process run() starts
    $self->{single} = $conf =~ /^\s*master_process\s+off\s*;/m;

    $self->write_file('nginx.conf', $conf);
    return $self;
}

# A stream block with the registration server on port "reg", and its token
# file, tunnel.tokens: $o{tokens}, or DEVTOKEN for account "dev".  %o:
# domain (0: no tunnel_domain, else tun.test), tcp (a port range: tcp
# tunnels there on 127.0.0.1, with tcp:// URLs there), reg (more lines for
# the server), listen (more listen parameters), app (1: a server on port
# "app" that passes plain bytes to the tunnel app.tun.test), stream (more
# text in the block), zone (1m), main (text before the block).
sub registration_config {
    my ($self, %o) = @_;
    $self->write_file('tunnel.tokens', $o{tokens} // DEVTOKEN . " id=dev\n",
        0600);

    my @lines = split /\n/, $o{reg} // '';
    unshift @lines, "tunnel_tcp_ports $o{tcp};",
        'tunnel_tcp_address 127.0.0.1;', 'tunnel_url tcp tcp://127.0.0.1:$port;'
        if $o{tcp};
    unshift @lines, 'tunnel_domain tun.test;' if $o{domain} // 1;
    my $reg = join '', map { s/^\s*/        /r . "\n" } @lines;
    my $listen = $o{listen} ? " $o{listen}" : '';
    my $zone = $o{zone} // '1m';
    my $app = $o{app} ? <<'EOF' : '';

    server {
        listen 127.0.0.1:%%PORT_app%%;
        tunnel_pass app.tun.test;
    }
EOF
    my $stream = defined $o{stream} ? "\n$o{stream}" : '';

    return ($o{main} // '') . <<"EOF";
stream {
    tunnel_zone tunnels $zone;

    server {
        listen 127.0.0.1:%%PORT_reg%%$listen;
        tunnel_server on;
        tunnel_tokens %%TESTDIR%%/tunnel.tokens;
$reg    }
$app$stream}
EOF
}

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    open my $fh, '>', "$self->{dir}/$name" or die "$name: $!\n";
    print $fh $content;
    close $fh;
    chmod $mode, "$self->{dir}/$name" if defined $mode;
    return "$self->{dir}/$name";
}

sub read_file {
    my ($self, $name) = @_;
    $name = "$self->{dir}/$name" unless $name =~ m{^/};
    open my $fh, '<', $name or return '';
    local $/;
    return scalar <$fh>;
}

# What process $name wrote: its stdout, then its stderr.
sub output {
    my ($self, $name) = @_;
    return $self->read_file("$name.out") . $self->read_file("$name.err");
}

# "nginx -t" on nginx.conf, or on $text (written to nginx-t.conf).
# Returns (ok, output).
sub test_config {
    my ($self, $text) = @_;
    my $conf = "$self->{dir}/nginx.conf";

    if (defined $text) {
        $conf = $self->write_file('nginx-t.conf', $self->_config_text($text));
    }

    my $out = `$self->{nginx} -t -p $self->{dir}/ -c $conf 2>&1`;
    return ($? == 0, $out);
}


### nginx

sub run {
    my ($self, %opts) = @_;
    my $timeout = $opts{timeout} // 10;
    my $d = $self->{dir};

    my @cmd = ($self->{nginx}, '-p', "$d/", '-c', "$d/nginx.conf");
    my $pid = $opts{detached} ? $self->_spawn_detached(@cmd)
        : _spawn("$d/nginx.out", "$d/nginx.err", 0, @cmd);
    $self->{master} = $pid;
    $self->{detached} = $opts{detached};

    my $deadline = time + $timeout;
    my @wait = @{$self->{listen}};

    while (time < $deadline) {
        if ($opts{detached} ? !_alive($pid) : waitpid($pid, WNOHANG) == $pid)
        {
            delete $self->{master};
            die "nginx exited at start (status $?)\n" . $self->_tails;
        }
        @wait = grep { !_accepts($_) } @wait;
        return $self if !@wait && ($self->{single} || _children($pid));
        sleep 0.05;
    }

    die "nginx not ready in ${timeout}s"
        . (@wait ? " (ports @wait not accepting)" : '') . "\n" . $self->_tails;
}

# HUP, then wait for new workers and for the old ones to exit.  Returns
# true if that happened within the timeout (old workers may rightly live on
# while they drain tunnels: pass a timeout that suits the test).
sub reload {
    my ($self, %opts) = @_;
    my $timeout = $opts{timeout} // 10;
    my $pid = $self->{master} or die "reload: nginx not running\n";
    my %old = map { $_ => 1 } _children($pid);

    kill HUP => $pid;

    my $deadline = time + $timeout;
    while (time < $deadline) {
        my @now = _children($pid);
        return 1 if @now && !grep { $old{$_} } @now;
        sleep 0.05;
    }

    Test::More::diag("reload: old workers still running after ${timeout}s");
    return 0;
}

# QUIT and wait; then TERM, then KILL, to the master and its workers only.
# Returns true if nginx quit gracefully.
sub stop {
    my ($self, %opts) = @_;
    my $pid = $self->{master} or return 1;
    my @workers = _children($pid);

    my $reap = $self->{detached} ? \&_gone : \&_reap;

    kill QUIT => $pid;
    my $ok = $reap->($pid, $opts{timeout} // 10);

    unless ($ok) {
        Test::More::diag("nginx did not quit in time, sending TERM");
        kill TERM => $pid;
        $reap->($pid, 5) or kill KILL => $pid, @workers;
        $reap->($pid, 5);
    }

    delete $self->{master};
    return $ok;
}

sub error_log { $_[0]->read_file('error.log') }

sub _tails {
    my ($self) = @_;
    my $s = '';
    for my $f ('nginx.err', 'error.log') {
        my @lines = split /\n/, $self->read_file($f);
        splice @lines, 0, -20 if @lines > 20;
        $s .= "--- $f:\n" . join("\n", @lines) . "\n" if @lines;
    }
    return $s;
}


### Background processes

# Starts @cmd with stdout and stderr in <name>.out and <name>.err of the
# test directory.  Returns the pid; it is killed at the end of the test.
sub spawn {
    my ($self, $name, @cmd) = @_;
    die "spawn: $name is running\n" if $self->{procs}{$name};
    my $d = $self->{dir};
    $self->{spawned}{$name} = 1;
    return $self->{procs}{$name} =
        _spawn("$d/$name.out", "$d/$name.err", 1, @cmd);
}

# The tunnel client, as spawn does.
sub tunnel {
    my ($self, $name, @args) = @_;
    return $self->spawn($name, $self->{client}, @args);
}

# The public URL that client $name was given (the first URL in its output,
# that of its "bound" line), within $timeout seconds (10); undef if none.
sub tunnel_url {
    my ($self, $name, $timeout) = @_;
    my $url = $self->wait_for_file_match("$name.out",
        qr{((?:https?|tcp)://[^\s"',]+)}, $timeout);
    $url =~ s/[.;)\]]+$// if defined $url;
    return $url;
}

# Waits up to $timeout seconds (10) for process $name to exit by itself.
# Returns its status ($?), or undef if it still runs.
sub wait_exit {
    my ($self, $name, $timeout) = @_;
    my $pid = $self->{procs}{$name} or return undef;
    _reap($pid, $timeout // 10) or return undef;
    delete $self->{procs}{$name};
    return $?;
}

# Signals the process (TERM unless told), then its process group, then
# KILLs the group.  Returns the exit status ($?).
sub kill_process {
    my ($self, $name, %opts) = @_;
    my $pid = delete $self->{procs}{$name} or return;

    kill $opts{signal} // 'TERM', $pid;
    my $ok = _reap($pid, $opts{timeout} // 5);
    my $status = $?;
    kill TERM => -$pid;
    $ok or _reap($pid, 2) or kill KILL => -$pid;
    $ok or _reap($pid, 5);
    return $ok ? $status : $?;
}

# nginx, not as our child: through a process that exits once nginx has
# started, as when nginx puts itself in the background, so that it honours
# USR2 (a binary upgrade: nginx ignores it while the process that started
# it lives on, taking itself for the new binary).  Returns the master's pid,
# from the pid file.
sub _spawn_detached {
    my ($self, @cmd) = @_;
    my $d = $self->{dir};
    unlink "$d/nginx.pid";

    my $mid = fork() // die "fork: $!\n";
    if ($mid == 0) {
        my $pid = fork();
        if (defined $pid && $pid == 0) {
            open(STDIN, '<', '/dev/null')
                && open(STDOUT, '>>', "$d/nginx.out")
                && open(STDERR, '>>', "$d/nginx.err")
                && exec { $cmd[0] } @cmd;
            POSIX::_exit(127);
        }
        # nginx reads its parent's pid first thing, writes its pid file
        # later: leave after that
        wait_for_file_match("$d/nginx.pid", qr/^\d+/, 10);
        POSIX::_exit(0);
    }
    waitpid($mid, 0);

    my $pid = wait_for_file_match("$d/nginx.pid", qr/^(\d+)/, 10)
        or die "nginx wrote no pid file\n" . $self->_tails;
    return $pid;
}

# a process that is not our child has gone (or is a zombie)
sub _alive {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $line = <$fh> // return 0;
    return $line !~ /^\d+ \(.*\) Z /s;
}

sub _gone {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 unless _alive($pid);
        sleep 0.05;
    }
    return 0;
}

# $group: lead a process group of its own, so that whatever the process
# starts goes with it (not for nginx: ^C reaches it with the test).
sub _spawn {
    my ($out, $err, $group, @cmd) = @_;

    my $pid = fork() // die "fork: $!\n";
    return $pid if $pid;

    # the child never returns into the test, whatever fails
    POSIX::setpgid(0, 0) if $group;
    open(STDIN, '<', '/dev/null')
        && open(STDOUT, '>>', $out)
        && open(STDERR, '>>', $err)
        && exec { $cmd[0] } @cmd;
    print STDERR "spawn $cmd[0]: $!\n";
    POSIX::_exit(127);
}

# The first match of $re in $file (relative to the test directory when
# called as a method) within $timeout seconds: $1 if the regex captures.
sub wait_for_file_match {
    my $self = ref $_[0] ? shift : undef;
    my ($file, $re, $timeout) = @_;
    $file = "$self->{dir}/$file" if $self && $file !~ m{^/};
    my $deadline = time + ($timeout // 10);

    while (1) {
        if (open my $fh, '<', $file) {
            local $/;
            my $text = <$fh> // '';
            if (my @m = $text =~ $re) {
                return defined $1 ? $1 : $&;
            }
        }
        return undef if time >= $deadline;
        sleep 0.05;
    }
}


### Clients

# Sends $data to 127.0.0.1:$port, returns everything read until the peer
# closes (undef if the connection fails).  Options: timeout (5s).
sub request {
    my ($port, $data, %opts) = @_;
    my $timeout = $opts{timeout} // 5;

    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => $timeout) or return undef;

    my $reply = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $timeout;
        print $s $data if length $data;
        while ($s->sysread(my $buf, 65536)) {
            $reply .= $buf;
        }
        alarm 0;
    };
    alarm 0;
    Test::More::diag("request to port $port: $@") if $@;
    return $reply;
}

# HTTP/1.0, so that the server closes.  Options: host, headers (text of
# extra header lines), timeout.
sub http_get {
    my ($port, $uri, %opts) = @_;
    return request($port, _http_head('GET', $uri, %opts) . "\r\n", %opts);
}

sub http_post {
    my ($port, $uri, $body, %opts) = @_;
    return request($port, _http_head('POST', $uri, %opts)
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body, %opts);
}

sub _http_head {
    my ($method, $uri, %opts) = @_;
    return "$method $uri HTTP/1.0\r\n"
        . "Host: " . ($opts{host} // 'localhost') . "\r\n"
        . ($opts{headers} // '');
}


### Process helpers

sub _accepts {
    my ($port) = @_;
    my $s = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return defined $s;
}

sub _children {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+)/s && $2 == $ppid;
    }
    return @kids;
}

sub _reap {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if waitpid($pid, WNOHANG) != 0;
        sleep 0.05;
    }
    return 0;
}


### The end

sub _final_checks {
    my ($self) = @_;
    return if $self->{checked}++;

    $self->_stop_all;

    my @alerts = $self->error_log =~ /^.*\[(?:alert|crit|emerg)\].*$/mg;
    @alerts = grep { $_ !~ $self->{expected_alerts} } @alerts
        if $self->{expected_alerts};
    Test::More::is(join("\n", @alerts), '',
        'no alert, crit or emerg in error.log');

    my @files = ('error.log', 'nginx.err',
        map { "$_.err" } keys %{$self->{spawned} // {}});
    my @reports = map { $self->read_file($_)
        =~ /^.*(?:ERROR: \w+Sanitizer|runtime error:).*$/mg } @files;
    Test::More::is(join("\n", @reports), '', 'no sanitizer reports');
}

sub _stop_all {
    my ($self) = @_;
    $self->stop;
    $self->kill_process($_) for keys %{$self->{procs}};
}

sub _cleanup {
    my ($self) = @_;
    return if $self->{cleaned}++ || $$ != $self->{owner};

    $self->_stop_all;

    if ($ENV{TEST_LEAVE}) {
        Test::More::diag("test directory left in $self->{dir}");
    } else {
        remove_tree($self->{dir});
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@, $!);

    delete $live{$self};
    $self->_final_checks if $self->{checks} && $$ == $self->{owner};
    $self->_cleanup;
}

1;

__END__

=head1 NAME

TunnelTest - integration test harness for ngx_tunnel

=head1 SYNOPSIS

    use lib 't/lib';
    use TunnelTest qw(http_get);

    my $t = TunnelTest->new->plan(1);
    $t->write_config(<<'EOF');
    http {
        server {
            listen 127.0.0.1:%%PORT_http%%;
            location / { return 200 "ok\n"; }
        }
    }
    EOF
    $t->run;
    like(http_get($t->port('http'), '/'), qr/200 OK/, 'get');

=head1 CONFIGURATION

C<write_config> expands C<%%PORT_name%%> (a free loopback port, the same
for the same name, see C<port>) and C<%%TESTDIR%%>, adds C<events {}> if
missing, and prepends C<load_module> lines (ngx_stream_module.so when the
nginx binary has stream as a dynamic module, then the tunnel module),
C<daemon off>, C<pid>, C<error_log> and, as root, C<user www-data>.  In
C<http {}> it sets the temp paths and access log inside the test directory.

=head1 ENVIRONMENT

    NGINX_BINARY           nginx to run (/usr/sbin/nginx)
    TUNNEL_MODULE          the .so (build/ngx_tunnel_module.so); empty: none,
                           for an nginx with the module linked in
    TUNNEL_STREAM_MODULE   ngx_stream_module.so to load first, if needed
    TUNNEL_CLIENT          the client (build/tunnel)
    TUNNEL_TEST_LOG_LEVEL  error_log level (info)
    TEST_LEAVE             keep the test directory

=head1 METHODS

new(log_level => ...), plan($n), done_testing, testdir, expect_alerts($re),
port($name),
port_range($name, $count), write_config($text), write_file($name, $text),
registration_config(tokens =>, domain =>, tcp =>, reg =>, listen =>, app =>,
stream =>, zone =>, main =>): the text of a stream block with the
registration server on "reg", its token file written (see the comment at
the sub),
read_file($name), output($name) (<name>.out, then <name>.err),
test_config([$text]), run(timeout => s, detached => 1:
not as our child, so that USR2 works; set $t->{master} to the new master
after a binary upgrade),
reload(timeout => s), stop(timeout => s), error_log, spawn($name, @cmd),
tunnel($name, @args), tunnel_url($name, $timeout),
kill_process($name, signal => ..., timeout => s), wait_exit($name, $timeout),
wait_for_file_match($file, $regex, $timeout).

Functions: request($port, $data), http_get($port, $uri, host => ...,
headers => ...), http_post($port, $uri, $body, ...), wait_for_file_match.
Constant: DEVTOKEN, the token registration_config's token file holds
unless told otherwise.

At the end (object destruction) nginx is stopped and spawned processes are
killed.  With C<plan> or C<done_testing>, two more tests check that the
error log has no C<[alert]>, C<[crit]> or C<[emerg]> line, and that neither
it nor the stderr files hold a sanitizer report.

=cut
