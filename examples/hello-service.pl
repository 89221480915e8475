#!/usr/bin/perl
# A sample local service for the demo: answers every HTTP request with a
# short greeting that says which request it got.  Usage: hello-service.pl PORT

use strict;
use warnings;
use IO::Socket::IP;

my $port = shift || 8000;
my $server = IO::Socket::IP->new(LocalHost => '127.0.0.1', LocalPort => $port,
                                 Listen => 64, ReuseAddr => 1)
    or die "hello-service: cannot listen on 127.0.0.1:$port: $!\n";

$SIG{CHLD} = 'IGNORE';

while (my $c = $server->accept) {
    next if fork;                       # one process per connection
    while (defined(my $line = <$c>)) {
        my ($method, $path) = $line =~ /^(\S+) (\S+)/ or last;
        my %h;
        while (defined(my $hl = <$c>)) {
            last if $hl =~ /^\r?\n$/;
            $h{lc $1} = $2 if $hl =~ /^([^:]+):\s*(.*?)\r?$/;
        }
        read($c, my $body, $h{'content-length'}) if $h{'content-length'};
        my $text = "Hello from your laptop! You asked for $method $path"
                 . " (via $h{host}, for " . ($h{'x-forwarded-for'} || '?')
                 . ")\n";
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
               . "Content-Length: " . length($text) . "\r\n\r\n$text";
        last if ($h{connection} || '') =~ /close/i;
    }
    exit 0;
}
