package wire

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// serveOn serves h on a fresh Unix socket as a module does, counting the
// connections it accepts, and returns a client of it.
func serveOn(t *testing.T, h http.Handler) (*DirectClient, *countingListener) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	cl := &countingListener{Listener: ln}
	go func() { _ = ServeDirect(cl, h, slog.New(slog.DiscardHandler)) }()
	client := NewDirectClient(ln.Addr().String())
	t.Cleanup(func() { client.Close() })
	return client, cl
}

func get(t *testing.T, client *DirectClient, path string) (string, error) {
	rec := httptest.NewRecorder()
	err := client.Forward(context.Background(), &modulev1.RequestHead{Method: "GET", Path: path}, nil, rec)
	return rec.Body.String(), err
}

// Exchanges in flight at once share the one multiplexed connection, and an
// exchange whose client does not read its answer (a big one, past the
// window) holds up none of the others.
func TestMuxSlowExchangeHoldsUpNoOther(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 4*muxWindowBytes)
	client, cl := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		w.Write([]byte("pong " + r.URL.Path))
	}))
	require.NoError(t, client.Warm(context.Background()))
	require.True(t, client.Multiplexed())

	// The slow exchange: its ResponseWriter blocks after the first write.
	ctx, cancel := context.WithCancel(context.Background())
	slow := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), blocked: make(chan struct{}), release: make(chan struct{})}
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- client.Forward(ctx, &modulev1.RequestHead{Method: "GET", Path: "/big"}, nil, slow)
	}()
	<-slow.blocked

	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/p" + strings.Repeat("x", i)
			body, err := get(t, client, path)
			assert.NoError(t, err)
			assert.Equal(t, "pong "+path, body)
		}()
	}
	waitOrFail(t, &wg, 10*time.Second, "exchanges were held up by one whose client does not read")

	close(slow.release) // the slow client reads again: its answer arrives whole
	require.NoError(t, <-slowDone)
	assert.Equal(t, len(big), slow.Body.Len())
	cancel()
	assert.Equal(t, int32(1), cl.n.Load(), "connections accepted")
}

// blockingWriter blocks its second Write, closing blocked, until release
// is closed.
type blockingWriter struct {
	*httptest.ResponseRecorder
	writes  int
	blocked chan struct{}
	release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.writes++
	if b.writes == 2 {
		close(b.blocked)
		<-b.release
	}
	return b.ResponseRecorder.Write(p)
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, d time.Duration, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// When the multiplexed connection breaks (the module's end closed it),
// exchanges in flight fail, and the next one dials a new connection.
func TestMuxConnectionLossAndRedial(t *testing.T) {
	started := make(chan struct{}, 1)
	client, cl := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		w.Write([]byte("ok"))
	}))
	require.NoError(t, client.Warm(context.Background()))
	errc := make(chan error, 1)
	go func() {
		_, err := get(t, client, "/hang")
		errc <- err
	}()
	<-started
	client.mu.Lock()
	mc := client.mux
	client.mu.Unlock()
	mc.conn.fc.c.Close() // as when the module process dies
	select {
	case err := <-errc:
		var fe *ForwardError
		require.ErrorAs(t, err, &fe)
		assert.False(t, fe.Body)
	case <-time.After(5 * time.Second):
		t.Fatal("the exchange in flight did not fail with its connection")
	}
	body, err := get(t, client, "/ok")
	require.NoError(t, err)
	assert.Equal(t, "ok", body)
	assert.Equal(t, int32(2), cl.n.Load(), "connections accepted")
}

// A module whose SDK does not serve multiplexed connections (it closes the
// connection at the magic, as the per-connection reader does at a frame
// over the limit) is served one exchange per connection.
func TestMuxFallsBackToConnections(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	require.NoError(t, err)
	defer ln.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("old")) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				fc := newFrameConn(c)
				if b, err := fc.br.Peek(4); err == nil && string(b) == muxMagic[:4] {
					c.Close() // what an older reader does: a frame over the limit
					return
				}
				serveDirectConn(&prefixConn{Conn: c, r: fc.br}, newWorkers(h, slog.New(slog.DiscardHandler)))
			}()
		}
	}()
	client := NewDirectClient(ln.Addr().String())
	defer client.Close()
	require.NoError(t, client.Warm(context.Background()))
	assert.False(t, client.Multiplexed())
	for range 3 {
		body, err := get(t, client, "/x")
		require.NoError(t, err)
		assert.Equal(t, "old", body)
	}
}

// prefixConn reads through r (which has buffered the start of Conn).
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// A client that leaves while the core is blocked writing a streamed answer
// to it cancels the module's handler at once, not when the core next waits
// for the module.
func TestMuxCancelWhileWritingToTheClient(t *testing.T) {
	chunk := bytes.Repeat([]byte("b"), muxWindowBytes/4)
	handlerDone := make(chan error, 1)
	client, _ := serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 1000 {
			if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
				break
			}
		}
		handlerDone <- r.Context().Err()
	}))
	require.NoError(t, client.Warm(context.Background()))
	require.True(t, client.Multiplexed())
	ctx, cancel := context.WithCancel(context.Background())
	slow := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), blocked: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- client.Forward(ctx, &modulev1.RequestHead{Method: "GET", Path: "/big"}, nil, slow) }()
	<-slow.blocked
	cancel()
	select {
	case err := <-handlerDone:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Error("the module was not told that the client left while the core wrote to it")
	}
	close(slow.release)
	<-done
}
