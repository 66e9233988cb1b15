package wire

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// bridge serves h as a module over real gRPC and returns an HTTP server
// that forwards to it the way the core does.
func bridge(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
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
	core := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		head := &modulev1.RequestHead{Method: r.Method, Path: r.URL.Path, ContentLength: r.ContentLength}
		if err := Forward(r.Context(), client, head, r.Body, w); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(core.Close)
	return core
}

// A module that answers without reading the body must not wait for the
// client's upload to end.
func TestEarlyAnswerDoesNotWaitForTheUpload(t *testing.T) {
	core := bridge(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Run("before anything was sent: a 500 in the error shape", func(t *testing.T) {
		core := bridge(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		core := bridge(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
