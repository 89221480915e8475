// Copyright (C) ngx_tunnel developers
//
// Interop peer: hashicorp/yamux (Debian's golang-github-hashicorp-yamux-dev,
// built in GOPATH mode) against our core in tests/interop/driver.c.  One
// scenario per run, the same names as the driver's:
//
//	peer -role server|client -scenario NAME -sync DIR [-port N]
//
// As server it listens on 127.0.0.1, an ephemeral port, and prints "port N"
// first.  When its checks are done it creates DIR/go.done, waits for
// DIR/c.done, and closes.  Exit status 0 when every check passed.
//
// Payload is the pattern the driver computes: byte "off" of stream "id"
// written by side "dir" (0 the driver, 1 this peer).

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

const (
	mib         = 1024 * 1024
	echoStreams = 100
	deadline    = 45 * time.Second
)

var (
	role     = flag.String("role", "", "client or server")
	scenario = flag.String("scenario", "", "what to test")
	syncDir  = flag.String("sync", "", "directory for the done files")
	port     = flag.Int("port", 0, "the server's port, for a client")

	failMu sync.Mutex
	failed int
	passed int
)

func pattern(id uint32, dir int, off uint64) byte {
	return byte((off * 131) ^ (off >> 9) ^ (uint64(id) * 29) ^
		(uint64(dir) * 0x5a))
}

func fill(id uint32, dir int, off uint64, b []byte) {
	for i := range b {
		b[i] = pattern(id, dir, off+uint64(i))
	}
}

func fail(format string, args ...interface{}) {
	failMu.Lock()
	defer failMu.Unlock()
	failed++
	fmt.Fprintf(os.Stderr, "peer %s %s: FAIL: %s\n", *role, *scenario,
		fmt.Sprintf(format, args...))
}

func pass(format string, args ...interface{}) {
	failMu.Lock()
	defer failMu.Unlock()
	passed++
	fmt.Printf("peer %s %s: ok: %s\n", *role, *scenario,
		fmt.Sprintf(format, args...))
}

// check reads everything up to EOF and compares it with the pattern
func check(s *yamux.Stream, dir int, want uint64) (uint64, error) {
	buf := make([]byte, 64*1024)
	exp := make([]byte, len(buf))
	var got uint64

	for {
		n, err := s.Read(buf)
		if n > 0 {
			fill(s.StreamID(), dir, got, exp[:n])
			if !bytes.Equal(buf[:n], exp[:n]) {
				return got, fmt.Errorf("stream %d: bytes %d-%d differ",
					s.StreamID(), got, got+uint64(n))
			}
			got += uint64(n)
		}
		if err == io.EOF {
			if want != 0 && got != want {
				return got, fmt.Errorf("stream %d: %d bytes, expected %d",
					s.StreamID(), got, want)
			}
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

func writePattern(s *yamux.Stream, dir int, total uint64) error {
	buf := make([]byte, 64*1024)
	var off uint64

	for off < total {
		n := uint64(len(buf))
		if n > total-off {
			n = total - off
		}
		fill(s.StreamID(), dir, off, buf[:n])
		if _, err := s.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// waitFor polls until cond holds or the deadline passes
func waitFor(what string, cond func() bool) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	fail("timed out waiting for %s", what)
	return false
}

func accept(sess *yamux.Session) *yamux.Stream {
	s, err := sess.AcceptStream()
	if err != nil {
		fail("accept: %v", err)
		return nil
	}
	return s
}

// the driver opens 100 streams and sends 1 MiB on each: echo, then FIN
func echoOurs(sess *yamux.Session) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0

	for i := 0; i < echoStreams; i++ {
		s := accept(sess)
		if s == nil {
			return
		}
		wg.Add(1)
		go func(s *yamux.Stream) {
			defer wg.Done()
			buf := make([]byte, 32*1024)
			exp := make([]byte, len(buf))
			var off uint64
			for {
				n, err := s.Read(buf)
				if n > 0 {
					fill(s.StreamID(), 0, off, exp[:n])
					if !bytes.Equal(buf[:n], exp[:n]) {
						fail("stream %d: bytes at %d differ",
							s.StreamID(), off)
						return
					}
					off += uint64(n)
					if _, werr := s.Write(buf[:n]); werr != nil {
						fail("stream %d: write: %v", s.StreamID(), werr)
						return
					}
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					fail("stream %d: read: %v", s.StreamID(), err)
					return
				}
			}
			if off != mib {
				fail("stream %d: %d bytes", s.StreamID(), off)
				return
			}
			s.Close()
			mu.Lock()
			ok++
			mu.Unlock()
		}(s)
	}
	wg.Wait()

	if ok == echoStreams {
		pass("echoed 1 MiB on each of 100 concurrent streams, " +
			"checking every byte")
	}
}

// we open 100 streams, send 1 MiB on each and check the echo
func echoTheirs(sess *yamux.Session) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0

	for i := 0; i < echoStreams; i++ {
		s, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
			return
		}
		wg.Add(1)
		go func(s *yamux.Stream) {
			defer wg.Done()
			werr := make(chan error, 1)
			go func() { werr <- writePattern(s, 1, mib) }()

			got := make([]byte, mib)
			if _, err := io.ReadFull(s, got); err != nil {
				fail("stream %d: read: %v", s.StreamID(), err)
				return
			}
			if err := <-werr; err != nil {
				fail("stream %d: write: %v", s.StreamID(), err)
				return
			}
			exp := make([]byte, mib)
			fill(s.StreamID(), 1, 0, exp)
			if !bytes.Equal(got, exp) {
				fail("stream %d: the echo differs", s.StreamID())
				return
			}
			s.Close()
			mu.Lock()
			ok++
			mu.Unlock()
		}(s)
	}
	wg.Wait()

	if ok != echoStreams {
		return
	}
	if waitFor("the driver's FINs", func() bool {
		return sess.NumStreams() == 0
	}) {
		pass("100 concurrent streams each echoed 1 MiB, every byte " +
			"the same, FIN both ways")
	}
}

// the driver sends 1 MiB and FIN; we answer 1 MiB after its FIN
func halfcloseOurs(sess *yamux.Session) {
	s := accept(sess)
	if s == nil {
		return
	}
	if _, err := check(s, 0, mib); err != nil {
		fail("%v", err)
		return
	}
	pass("received 1 MiB and the driver's FIN")
	if err := writePattern(s, 1, mib); err != nil {
		fail("write after the driver's FIN: %v", err)
		return
	}
	s.Close()
	if waitFor("the stream to close", func() bool {
		return sess.NumStreams() == 0
	}) {
		pass("sent 1 MiB after the driver's FIN, then FIN")
	}
}

// we send 1 MiB and FIN; the driver sends 100 KiB after our FIN
func halfcloseTheirs(sess *yamux.Session) {
	s, err := sess.OpenStream()
	if err != nil {
		fail("open: %v", err)
		return
	}
	if err := writePattern(s, 1, mib); err != nil {
		fail("write: %v", err)
		return
	}
	s.Close()

	// this yamux's Read gives EOF at once after our own Close when its
	// buffer is empty: read only once the driver's FIN closed the stream
	if !waitFor("the driver's FIN", func() bool {
		return sess.NumStreams() == 0
	}) {
		return
	}
	if _, err := check(s, 0, 100*1024); err != nil {
		fail("%v", err)
		return
	}
	pass("received 100 KiB sent after our FIN, then the driver's FIN")
}

// backlog 1, accepted late: the driver's second stream is refused; its
// first is reset by the driver; ours is reset when our data arrives
func reset(sess *yamux.Session) {
	if !waitFor("the driver's streams", func() bool {
		return sess.NumStreams() >= 1
	}) {
		return
	}
	time.Sleep(300 * time.Millisecond)

	s := accept(sess)
	if s == nil {
		return
	}
	buf := make([]byte, 64*1024)
	for {
		_, err := s.Read(buf)
		if err == yamux.ErrConnectionReset {
			pass("the driver's RST reached stream %d", s.StreamID())
			break
		}
		if err != nil {
			fail("stream %d: %v, expected a reset", s.StreamID(), err)
			return
		}
	}

	g, err := sess.OpenStream()
	if err != nil {
		fail("open: %v", err)
		return
	}
	if _, err := g.Write([]byte("x")); err != nil {
		fail("write: %v", err)
		return
	}
	g.SetReadDeadline(time.Now().Add(deadline))
	if _, err := g.Read(buf); err == yamux.ErrConnectionReset {
		pass("the driver reset our stream %d", g.StreamID())
	} else {
		fail("stream %d: read gave %v, expected a reset", g.StreamID(), err)
	}
}

func ping(sess *yamux.Session) {
	for i := 0; i < 5; i++ {
		if _, err := sess.Ping(); err != nil {
			fail("ping %d: %v", i, err)
			return
		}
	}
	pass("5 pings answered by the driver")
}

// we send go-away while the driver's stream is open, then keep echoing
func goAwayTheirs(sess *yamux.Session) {
	s := accept(sess)
	if s == nil {
		return
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(s, buf); err != nil {
		fail("read: %v", err)
		return
	}
	if err := sess.GoAway(); err != nil {
		fail("go-away: %v", err)
		return
	}
	if _, err := s.Write(buf); err != nil {
		fail("write: %v", err)
		return
	}
	rest, err := ioutil.ReadAll(s)
	if err != nil {
		fail("read: %v", err)
		return
	}
	if _, err := s.Write(rest); err != nil {
		fail("write after go-away: %v", err)
		return
	}
	s.Close()
	if string(buf)+string(rest) == "hello1hello2" {
		pass("the stream went on after our go-away")
	} else {
		fail("got %q", string(buf)+string(rest))
	}
}

// the driver sends go-away when our data arrives: no new streams from us,
// the open one goes on, and the driver may still open one
func goAwayOurs(sess *yamux.Session) {
	s, err := sess.OpenStream()
	if err != nil {
		fail("open: %v", err)
		return
	}
	if _, err := s.Write([]byte("hello1")); err != nil {
		fail("write: %v", err)
		return
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello1" {
		fail("echo %q: %v", string(buf), err)
		return
	}
	if _, err := sess.OpenStream(); err == yamux.ErrRemoteGoAway {
		pass("the driver's go-away stops our new streams")
	} else {
		fail("open after go-away: %v", err)
	}
	if _, err := s.Write([]byte("hello2")); err != nil {
		fail("write after go-away: %v", err)
		return
	}
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hello2" {
		fail("echo %q: %v", string(buf), err)
		return
	}
	s.Close()
	pass("our open stream went on after the driver's go-away")

	l := accept(sess)
	if l == nil {
		return
	}
	b, err := ioutil.ReadAll(l)
	if err != nil {
		fail("read: %v", err)
		return
	}
	if _, err := l.Write(b); err != nil {
		fail("write: %v", err)
		return
	}
	l.Close()
	pass("accepted the driver's stream opened after its go-away")
}

// 8 MiB windows: see scenario_window() in driver.c
func window(sess *yamux.Session) {
	done := make(chan bool)

	go func() {
		defer close(done)
		g, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
			return
		}
		// the driver credits nothing before 8 MiB have arrived: this
		// only completes if its SYN/ACK window was honoured
		if err := writePattern(g, 1, 16*mib); err != nil {
			fail("write: %v", err)
			return
		}
		g.Close()
		pass("sent 16 MiB, the first 8 MiB on the driver's window alone")
	}()

	s := accept(sess)
	if s == nil {
		return
	}
	goStream := accept(sess)
	if goStream == nil {
		return
	}
	word, err := ioutil.ReadAll(goStream)
	if err != nil || string(word) != "go" {
		fail("go stream: %q, %v", string(word), err)
		return
	}
	goStream.Close()
	if _, err := check(s, 0, 24*mib); err != nil {
		fail("%v", err)
		return
	}
	s.Close()
	pass("received 24 MiB on an 8 MiB window, every byte the same")
	<-done
}

func main() {
	flag.Parse()
	if *scenario == "" || *syncDir == "" ||
		(*role != "server" && *role != "client") {
		fmt.Fprintln(os.Stderr, "usage: peer -role server|client "+
			"-scenario NAME -sync DIR [-port N]")
		os.Exit(2)
	}

	conf := yamux.DefaultConfig()
	conf.LogOutput = os.Stderr
	conf.EnableKeepAlive = false
	switch *scenario {
	case "window":
		conf.MaxStreamWindowSize = 8 * mib
	case "reset":
		conf.AcceptBacklog = 1
	}

	var conn net.Conn
	var err error
	if *role == "server" {
		l, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			fmt.Fprintln(os.Stderr, lerr)
			os.Exit(1)
		}
		fmt.Printf("port %d\n", l.Addr().(*net.TCPAddr).Port)
		conn, err = l.Accept()
		l.Close()
	} else {
		conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	var sess *yamux.Session
	if *role == "server" {
		sess, err = yamux.Server(conn, conf)
	} else {
		sess, err = yamux.Client(conn, conf)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	run := map[string]func(*yamux.Session){
		"echo-ours":        echoOurs,
		"echo-theirs":      echoTheirs,
		"halfclose-ours":   halfcloseOurs,
		"halfclose-theirs": halfcloseTheirs,
		"reset":            reset,
		"ping":             ping,
		"goaway-theirs":    goAwayTheirs,
		"goaway-ours":      goAwayOurs,
		"window":           window,
	}[*scenario]
	if run == nil {
		fail("unknown scenario")
	} else {
		finished := make(chan bool)
		go func() { run(sess); close(finished) }()
		select {
		case <-finished:
		case <-time.After(deadline):
			fail("timed out")
		}
	}

	// done: say so, and keep the session until the driver is done too
	ioutil.WriteFile(filepath.Join(*syncDir, "go.done"), nil, 0644)
	if failed == 0 {
		waitFor("the driver to finish", func() bool {
			_, err := os.Stat(filepath.Join(*syncDir, "c.done"))
			return !errors.Is(err, os.ErrNotExist)
		})
	}
	sess.Close()

	if failed > 0 || passed == 0 {
		fmt.Fprintf(os.Stderr, "peer %s %s: %d failed, %d passed\n",
			*role, *scenario, failed, passed)
		os.Exit(1)
	}
}
