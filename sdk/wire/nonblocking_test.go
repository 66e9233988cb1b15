//go:build unix

package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// listen listens on loopback TCP or on a Unix socket in a temporary
// directory.
func listen(t *testing.T, network string) net.Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// connPair returns two connected sockets of network ("tcp" or "unix"),
// each wrapped by NonblockingConn.
func connPair(t *testing.T, network string) (a, b net.Conn) {
	t.Helper()
	ln := listen(t, network)
	defer ln.Close()
	ln = NonblockingListener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, b = NonblockingConn(c), <-accepted
	if b == nil {
		t.FailNow()
	}
	for _, x := range []net.Conn{a, b} {
		if _, ok := x.(vectorWriter); ok != rawSyscalls {
			t.Fatalf("%T: wrapped %v, raw system calls in this build %v", x, ok, rawSyscalls)
		}
		t.Cleanup(func() { x.Close() })
	}
	return a, b
}

// Data much bigger than the socket buffers goes through whole, in order,
// with the writer waiting on the poller (EAGAIN) while the reader is slow.
func TestNonblockingConnCarriesEverything(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := connPair(t, network)
			data := make([]byte, 8<<20)
			_, _ = rand.Read(data)
			werr := make(chan error, 1)
			go func() {
				n, err := a.Write(data)
				if err == nil && n != len(data) {
					err = io.ErrShortWrite
				}
				if err == nil {
					err = a.(interface{ CloseWrite() error }).CloseWrite()
				}
				werr <- err
			}()
			time.Sleep(50 * time.Millisecond) // the writer fills the buffers and waits
			var got bytes.Buffer
			buf := make([]byte, 3000) // odd reads
			for {
				n, err := b.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("read %d bytes, not the %d written", got.Len(), len(data))
			}
		})
	}
}

// Errors are the net package's: a deadline is a timeout, a closed
// connection net.ErrClosed, a peer gone a system call error; all
// *net.OpError.
func TestNonblockingConnErrors(t *testing.T) {
	a, b := connPair(t, "tcp")
	buf := make([]byte, 10)

	_ = a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := a.Read(buf)
	var ne net.Error
	var oe *net.OpError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Op != "read" || oe.Err != os.ErrDeadlineExceeded {
		t.Fatalf("read past the deadline: %#v", err)
	}
	_ = a.SetReadDeadline(time.Time{})

	// A read waiting on the poller ends when the connection is closed.
	err = endsAtClose(t, a, func() error { _, err := a.Read(buf); return err })
	if !errors.As(err, &oe) {
		t.Fatalf("read on a closed connection: %#v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v", err)
	}

	// The peer is gone: b reads EOF, then writing fails with EPIPE or
	// ECONNRESET (and SIGPIPE does not end the process).
	if n, err := b.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read from a closed peer: %d, %v", n, err)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = b.Write(bytes.Repeat([]byte("x"), 64<<10))
		time.Sleep(time.Millisecond)
	}
	var se *os.SyscallError
	if !errors.As(werr, &oe) || oe.Op != "write" || !errors.As(werr, &se) ||
		!(errors.Is(werr, syscall.EPIPE) || errors.Is(werr, syscall.ECONNRESET)) {
		t.Fatalf("write to a closed peer: %#v", werr)
	}
}

// net/http serves through NonblockingListener as through the listener
// itself: keep-alive requests, a file through ReadFrom, a hijacked
// connection.
func TestNonblockingListenerServesHTTP(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) { testServesHTTP(t, network) })
	}
}

func testServesHTTP(t *testing.T, network string) {
	file := filepath.Join(t.TempDir(), "f")
	content := bytes.Repeat([]byte("chacc "), 200<<10)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = rw.Flush()
	})
	ln := listen(t, network)
	srv := &http.Server{Handler: mux, ErrorLog: log.New(&failWriter{t}, "", 0)}
	go func() { _ = srv.Serve(NonblockingListener(ln)) }()
	defer srv.Close()
	base := "http://chacc.test"
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DialContext: dial}}
	defer client.CloseIdleConnections()

	for i := 0; i < 3; i++ {
		resp, err := client.Get(base + "/file")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(body, content) {
			t.Fatalf("file: %d bytes, %v", len(body), err)
		}
		payload := bytes.Repeat([]byte{byte(i)}, 3<<20)
		resp, err = client.Post(base+"/echo", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(body, payload) {
			t.Fatalf("echo: %d bytes, %v", len(body), err)
		}
	}
	resp, err := client.Get(base + "/hijack")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hijacked" {
		t.Fatalf("hijack: %q", body)
	}
}

// A connection without a file descriptor is left as it is.
func TestNonblockingConnLeavesPipes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if NonblockingConn(a) != a {
		t.Fatal("a net.Pipe was wrapped")
	}
}

// failWriter fails the test with whatever the server logs (a panic in a
// handler, a failed write).
type failWriter struct{ t *testing.T }

func (w *failWriter) Write(p []byte) (int, error) {
	w.t.Errorf("server: %s", p)
	return len(p), nil
}

// Several buffers go out whole and in order through writeVectors, more of
// them than one writev takes and bigger than one call copies, while the
// reader is slow; a frame with a big body does too.
func TestNonblockingConnWritesVectors(t *testing.T) {
	if !rawSyscalls {
		t.Skip("no raw system calls in this build")
	}
	a, b := connPair(t, "unix")
	var bufs [][]byte
	var want []byte
	for i := 0; i < 20; i++ {
		buf := make([]byte, []int{0, 1, 100, 70 << 10, 300 << 10}[i%5])
		_, _ = rand.Read(buf)
		bufs = append(bufs, buf)
		want = append(want, buf...)
	}
	done := make(chan error, 1)
	go func() {
		n, err := a.(vectorWriter).writeVectors(bufs)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes read are not the buffers written")
	}
}

// A write that the peer does not take ends at the write deadline, or at
// Close, having written part; reads and writes run at once both ways.
func TestNonblockingConnWriteDeadlineCloseAndBothWays(t *testing.T) {
	a, _ := connPair(t, "tcp") // the other end reads nothing
	big := make([]byte, 64<<20)
	_ = a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := a.Write(big)
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" || oe.Err != os.ErrDeadlineExceeded || n <= 0 || n >= len(big) {
		t.Fatalf("write past the deadline: %d bytes, %#v", n, err)
	}
	_ = a.SetWriteDeadline(time.Time{})
	endsAtClose(t, a, func() error { _, err := a.Write(big); return err })

	c, d := connPair(t, "unix")
	var wg sync.WaitGroup
	for _, pair := range [][2]net.Conn{{c, d}, {d, c}} {
		w, r := pair[0], pair[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := w.Write(bytes.Repeat([]byte{byte(i)}, 10<<10)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 10<<10)
			for i := 0; i < 200; i++ {
				if _, err := io.ReadFull(r, buf); err != nil {
					t.Error(err)
					return
				}
				if buf[0] != byte(i) || buf[len(buf)-1] != byte(i) {
					t.Errorf("message %d read as %d", i, buf[0])
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A datagram socket is left as it is: an empty datagram is not the end.
func TestNonblockingConnLeavesDatagrams(t *testing.T) {
	dir := t.TempDir()
	la := &net.UnixAddr{Name: filepath.Join(dir, "a"), Net: "unixgram"}
	c, err := net.ListenUnixgram("unixgram", la)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if NonblockingConn(c) != net.Conn(c) {
		t.Fatal("a datagram socket was wrapped")
	}
}

// endsAtClose runs op, which waits on the poller, closes c while it waits,
// and fails unless op then ends with net.ErrClosed; it returns op's error.
func endsAtClose(t *testing.T, c net.Conn, op func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	time.Sleep(30 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("waiting at Close: %v", err)
		}
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("an operation waiting on the poller did not end at Close")
		return nil
	}
}
