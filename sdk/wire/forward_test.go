package wire

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// transports are the ways the core reaches a module's handler.
var transports = []string{"grpc", "direct", "conns"}

// directTransports are those over the direct socket.
var directTransports = []string{"direct", "conns"}

// bridge serves h as a module over transport ("grpc": a real gRPC server
// and HTTP.Handle streams; "direct": the direct socket, multiplexed;
// "conns": the direct socket, one exchange per connection) and returns an
// HTTP server that forwards to it the way the core does.
func bridge(t testing.TB, transport string, h http.Handler) *httptest.Server {
	t.Helper()
	var forward func(ctx context.Context, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error
	switch transport {
	case "grpc":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer(ServerOptions()...)
		modulev1.RegisterHTTPServer(s, NewHTTPServer(h, slog.New(slog.DiscardHandler)))
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		cc, err := grpc.NewClient(ln.Addr().String(), DialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		require.NoError(t, err)
		t.Cleanup(func() { cc.Close() })
		client := modulev1.NewHTTPClient(cc)
		forward = func(ctx context.Context, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
			return Forward(ctx, client, head, body, w)
		}
	case "direct", "conns":
		dir, err := os.MkdirTemp("", "wire")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		ln, err := net.Listen("unix", filepath.Join(dir, "http.sock"))
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() { _ = ServeDirect(ln, h, slog.New(slog.DiscardHandler)) }()
		client := NewDirectClient(ln.Addr().String())
		if transport == "conns" {
			client = NewPerConnClient(ln.Addr().String())
		}
		t.Cleanup(func() { client.Close() })
		require.NoError(t, client.Warm(context.Background()))
		require.Equal(t, transport == "direct", client.Multiplexed())
		forward = client.Forward
	}
	core := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		head := &modulev1.RequestHead{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
			Headers: HeadersToProto(r.Header), ContentLength: r.ContentLength}
		if err := forward(r.Context(), head, r.Body, w); err != nil {
			t.Logf("forward: %v", err)
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(core.Close)
	return core
}

// eachTransport runs test on every transport.
func eachTransport(t *testing.T, test func(t *testing.T, transport string)) {
	eachOf(t, transports, test)
}

// eachOf runs test on each of transports.
func eachOf(t *testing.T, transports []string, test func(t *testing.T, transport string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}

// A module that answers without reading the body must not wait for the
// client's upload to end.
func TestEarlyAnswerDoesNotWaitForTheUpload(t *testing.T) {
	eachTransport(t, testEarlyAnswer)
}

func testEarlyAnswer(t *testing.T, transport string) {
	core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	pr, pw := io.Pipe()
	uploadOpen := make(chan struct{})
	defer close(uploadOpen)
	go func() {
		_, _ = pw.Write(make([]byte, 100<<10))
		<-uploadOpen // the upload stays open until the test ends
		pw.Close()
	}()
	req, err := http.NewRequest("POST", core.URL+"/x", pr)
	require.NoError(t, err)
	got := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case status := <-got:
		assert.Equal(t, http.StatusUnauthorized, status)
	case <-time.After(20 * time.Second):
		t.Fatal("the answer waited for the upload to finish")
	}
}

func TestHandlerPanic(t *testing.T) {
	eachTransport(t, testHandlerPanic)
}

func testHandlerPanic(t *testing.T, transport string) {
	t.Run("before anything was sent: a 500 in the error shape", func(t *testing.T) {
		core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(make([]byte, 100)) // buffered, not yet sent
			panic("boom")
		}))
		resp, err := http.Get(core.URL + "/x")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		assert.Contains(t, string(body), `"error_code":"INTERNAL_ERROR"`)
	})
	t.Run("after part of the body was sent: the client sees a broken body", func(t *testing.T) {
		core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(make([]byte, 40<<10)) // more than a chunk: the head is out
			panic("boom")
		}))
		resp, err := http.Get(core.URL + "/x")
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = io.ReadAll(resp.Body)
		assert.Error(t, err, "a truncated body must not end cleanly")
	})
}

// A handler that ends its goroutine with runtime.Goexit (t.FailNow, say)
// aborts its exchange, before or after its head went out, instead of
// leaving the core waiting for a last frame; the exchanges after it are
// served.
func TestHandlerGoexit(t *testing.T) {
	eachOf(t, directTransports, func(t *testing.T, transport string) {
		core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/ping":
				w.Write([]byte("pong"))
				return
			case "/after-head":
				w.Write(make([]byte, 40<<10)) // more than a chunk: the head is out
			}
			runtime.Goexit()
		}))
		client := &http.Client{Timeout: 20 * time.Second}
		for _, path := range []string{"/before-head", "/after-head"} {
			resp, err := client.Get(core.URL + path)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			require.Error(t, err, path)
			assert.NotContains(t, err.Error(), "Timeout", "%s: the core waited for the module", path)
			resp, err = client.Get(core.URL + "/ping")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "pong", string(body))
		}
	})
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Exchanges one after another reuse connections, whatever the size of
// their bodies: those whose body fits in a frame go over the multiplexed
// connection, the bigger ones over one connection of their own, reused.
func TestDirectReusesConnections(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer ln.Close()
	cl := &countingListener{Listener: ln}
	go func() {
		_ = ServeDirect(cl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
		}), slog.New(slog.DiscardHandler))
	}()
	client := NewDirectClient(ln.Addr().String())
	defer client.Close()
	for i := range 20 {
		body := strings.Repeat("x", i*5000) // some over a chunk: several frames each way
		rec := httptest.NewRecorder()
		head := &modulev1.RequestHead{Method: "POST", Path: "/x", ContentLength: int64(len(body))}
		require.NoError(t, client.Forward(context.Background(), head, strings.NewReader(body), rec))
		assert.Equal(t, body, rec.Body.String())
	}
	assert.True(t, client.Multiplexed())
	assert.Equal(t, int32(2), cl.n.Load())
}

// streamUntilCancelled serves /ping with "pong" and anything else with one
// server-sent event, then waits for the request to be cancelled and sends
// the context's error to done.
func streamUntilCancelled(done chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			w.Write([]byte("pong"))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: 1\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		done <- r.Context().Err()
	})
}

// leaveMidStream sends method with body to url, reads the first event,
// leaves, and checks that the handler's context is cancelled.
func leaveMidStream(t *testing.T, method, url, body string, handlerDone <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "data: 1\n", line)
	cancel()
	resp.Body.Close()
	select {
	case err := <-handlerDone:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was not cancelled")
	}
}

// A client that leaves cancels the module's handler, and the exchanges
// after it are served (on a new connection, or on the multiplexed one).
func TestDirectCancellation(t *testing.T) {
	eachOf(t, directTransports, func(t *testing.T, transport string) {
		handlerDone := make(chan error, 1)
		core := bridge(t, transport, streamUntilCancelled(handlerDone))
		leaveMidStream(t, http.MethodGet, core.URL+"/sse", "", handlerDone)
		for range 3 {
			resp, err := http.Get(core.URL + "/ping")
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "pong", string(body))
		}
	})
}

// A client that leaves before the module has answered anything cancels the
// handler: the core is then waiting for the first frame.
func TestCancellationBeforeTheAnswer(t *testing.T) {
	eachTransport(t, func(t *testing.T, transport string) {
		handlerDone := make(chan error, 1)
		started := make(chan struct{})
		core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ping" {
				w.Write([]byte("pong"))
				return
			}
			close(started)
			<-r.Context().Done()
			handlerDone <- r.Context().Err()
		}))
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, core.URL+"/silent", nil)
		_, err := http.DefaultClient.Do(req)
		require.ErrorIs(t, err, context.Canceled)
		select {
		case err := <-handlerDone:
			assert.ErrorIs(t, err, context.Canceled)
		case <-time.After(20 * time.Second):
			t.Fatal("the handler was not cancelled")
		}
		resp, err := http.Get(core.URL + "/ping")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "pong", string(body))
	})
}

// A client that leaves cancels a handler that streams its answer without
// reading the body it was sent: three frames, so the module's reader must
// keep reading past what the handler left unread to see the core close the
// connection. (The body stays under gRPC's 64 KiB stream window: the core's
// net/http server notices a client leaving only once it has read the whole
// request body, whatever the bridge.)
func TestCancellationWithUnreadBody(t *testing.T) {
	eachTransport(t, func(t *testing.T, transport string) {
		handlerDone := make(chan error, 1)
		core := bridge(t, transport, streamUntilCancelled(handlerDone))
		leaveMidStream(t, http.MethodPost, core.URL+"/hold", strings.Repeat("b", ChunkSize+ChunkSize/2), handlerDone)
	})
}

// A handler that answers before reading the body it was sent leaves the
// connection in a state the next exchange does not see.
func TestUnreadBody(t *testing.T) {
	eachTransport(t, testUnreadBody)
}

func testUnreadBody(t *testing.T, transport string) {
	core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/read" {
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
			return
		}
		w.Write([]byte("ignored"))
	}))
	for i := range 10 {
		path, body := "/ignore", strings.Repeat("y", 100<<10)
		if i%2 == 1 {
			path, body = "/read", "z"+strings.Repeat("z", i)
		}
		resp, err := http.Post(core.URL+path, "text/plain", strings.NewReader(body))
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		if path == "/read" {
			assert.Equal(t, body, string(got))
		} else {
			assert.Equal(t, "ignored", string(got))
		}
	}
}

func TestFrameLimit(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = a.Write([]byte{0xff, 0xff, 0xff, 0xff}) }()
	_, err := newFrameConn(b).readRequest(&modulev1.HTTPRequestFrame{}, false)
	assert.ErrorContains(t, err, "over the limit")
}
