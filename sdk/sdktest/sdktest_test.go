package sdktest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

// guard bounds waits that only a broken bridge would make long; the tests
// sequence with channels, not with timings.
const guard = 10 * time.Second

// start runs a module serving handler with the given routes; setup, when not
// nil, runs in Setup.
func start(t testing.TB, handler http.Handler, opts sdktest.Options, setup func(*sdk.Runtime), routes ...sdk.Route) *sdktest.Harness {
	t.Helper()
	return sdktest.Start(t, sdk.Module{
		Routes: routes,
		Setup: func(_ context.Context, rt *sdk.Runtime) (http.Handler, error) {
			if setup != nil {
				setup(rt)
			}
			return handler, nil
		},
	}, opts)
}

func TestGET(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"hello":"` + r.URL.Query().Get("name") + `"}`))
	})
	h := start(t, mux, sdktest.Options{}, nil, sdk.Route{Method: http.MethodGet, Path: "/test/hello"})

	resp := h.Do(httptest.NewRequest(http.MethodGet, "/test/hello?name=Ada", nil))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.NotEmpty(t, resp.Header.Get("X-Request-ID"))
	assert.Equal(t, resp.Header.Get("X-Request-ID"), resp.Header.Get("X-Correlation-ID"))
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"hello":"Ada"}`, string(body))

	resp = h.Do(httptest.NewRequest(http.MethodGet, "/test/missing", nil))
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	assert.Equal(t, "/test/hello", h.Routes()[0].GetPath())
	assert.Equal(t, sdk.Version, h.Describe().GetSdkVersion())
}

func TestLargeBodyEchoed(t *testing.T) {
	// The handler reads and writes in chunks of an odd size, so the body
	// crosses the bridge in many frames both ways, while it is still
	// arriving.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /test/echo", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 7000)
		for {
			n, err := r.Body.Read(buf)
			w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	})
	h := start(t, mux, sdktest.Options{}, nil)
	body := make([]byte, 1<<20)
	rand.Read(body)

	tests := []struct {
		name string
		do   func() (*http.Response, error)
	}{
		{"recorder", func() (*http.Response, error) {
			return h.Do(httptest.NewRequest(http.MethodPost, "/test/echo", bytes.NewReader(body))), nil
		}},
		{"server", func() (*http.Response, error) {
			return http.Post(h.URL()+"/test/echo", "application/octet-stream", bytes.NewReader(body))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.do()
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.True(t, bytes.Equal(body, got), "echoed %d bytes, sent %d", len(got), len(body))
		})
	}
}

func TestStreamedResponse(t *testing.T) {
	next := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			if i > 0 {
				select { // stands for the handler's work between chunks
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			w.Write([]byte("chunk " + string(rune('1'+i)) + "\n"))
			w.(http.Flusher).Flush()
		}
	})
	h := start(t, mux, sdktest.Options{}, nil)

	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL()+"/test/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()

	// Each chunk arrives while the handler is still blocked before writing
	// the next one: without streaming, this read would wait for all three.
	r := bufio.NewReader(resp.Body)
	for i, want := range []string{"chunk 1\n", "chunk 2\n", "chunk 3\n"} {
		if i > 0 {
			next <- struct{}{}
		}
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, want, line)
	}
	_, err = r.ReadByte()
	assert.Equal(t, io.EOF, err)
}

func TestClientCancellation(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/wait", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		close(cancelled)
	})
	h := start(t, mux, sdktest.Options{}, nil)

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL()+"/test/wait", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	<-started
	cancel()
	select {
	case <-cancelled:
	case <-time.After(guard):
		t.Fatal("the handler's context was not cancelled when the client went away")
	}
}

func TestHandlerPanic(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := start(t, mux, sdktest.Options{}, nil)

	resp := h.Do(httptest.NewRequest(http.MethodGet, "/test/panic", nil))
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, map[string]string{
		"detail":     "Internal error.",
		"error_code": "INTERNAL_ERROR",
		"request_id": resp.Header.Get("X-Request-ID"),
	}, body)

	logs := h.Logs()
	require.NotEmpty(t, logs)
	assert.Equal(t, "error", logs[0].GetLevel())
	assert.Equal(t, "boom", logs[0].GetAttrs()["panic"])
}

func TestModuleFailure(t *testing.T) {
	// A handler that aborts before answering leaves the stream without a
	// response: the core answers 503 in that case.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	h := start(t, mux, sdktest.Options{}, nil)

	resp := h.Do(httptest.NewRequest(http.MethodGet, "/test/abort", nil))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, "MODULE_UNAVAILABLE", body["error_code"])
	assert.Equal(t, resp.Header.Get("X-Request-ID"), body["request_id"])
}

func TestRequestInfo(t *testing.T) {
	type seen struct {
		Principal    sdk.Principal
		Anonymous    bool
		Request      sdk.RequestInfo
		HeaderLength int64
	}
	echoInfo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := sdk.PrincipalFrom(r.Context())
		json.NewEncoder(w).Encode(seen{Principal: p, Anonymous: !ok, Request: sdk.RequestFrom(r.Context()), HeaderLength: r.ContentLength})
	})
	h := start(t, echoInfo, sdktest.Options{}, nil,
		sdk.Route{Method: http.MethodGet, Path: "/test/items/special"},
		sdk.Route{Method: http.MethodGet, Path: "/test/items/:id"},
		sdk.Route{Method: "*", Path: "/test/files/*"},
	)
	admin := sdk.Principal{Subject: "u1", Roles: []string{"admin"}, Scopes: []string{"read"}, Method: "jwt"}

	tests := []struct {
		name      string
		req       *http.Request
		opts      []sdktest.RequestOption
		want      sdk.RequestInfo
		principal *sdk.Principal
	}{
		{
			name: "param route, principal, client ids",
			req: withHeaders(httptest.NewRequest(http.MethodGet, "/test/items/42", nil),
				"X-Request-ID", "req-1", "X-Correlation-ID", "corr-1"),
			opts: []sdktest.RequestOption{sdktest.AsPrincipal(admin)},
			want: sdk.RequestInfo{ID: "req-1", CorrelationID: "corr-1", ClientIP: "192.0.2.1",
				Route: "/test/items/:id", PathParams: map[string]string{"id": "42"}},
			principal: &admin,
		},
		{
			name: "first declared route wins",
			req:  withHeaders(httptest.NewRequest(http.MethodGet, "/test/items/special", nil), "X-Request-ID", "req-2"),
			want: sdk.RequestInfo{ID: "req-2", CorrelationID: "req-2", ClientIP: "192.0.2.1", Route: "/test/items/special"},
		},
		{
			name: "wildcard route, any method",
			req:  withHeaders(httptest.NewRequest(http.MethodPost, "/test/files/a/b.txt", strings.NewReader("x")), "X-Request-ID", "req-3"),
			want: sdk.RequestInfo{ID: "req-3", CorrelationID: "req-3", ClientIP: "192.0.2.1",
				Route: "/test/files/*", PathParams: map[string]string{"*": "a/b.txt"}},
		},
		{
			name: "no declared route",
			req:  withHeaders(httptest.NewRequest(http.MethodDelete, "/test/items/42", nil), "X-Request-ID", "req-4"),
			want: sdk.RequestInfo{ID: "req-4", CorrelationID: "req-4", ClientIP: "192.0.2.1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Do(tc.req, tc.opts...)
			var got seen
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			assert.Equal(t, tc.want, got.Request)
			assert.Equal(t, tc.want.ID, resp.Header.Get("X-Request-ID"))
			assert.Equal(t, tc.principal == nil, got.Anonymous)
			if tc.principal != nil {
				assert.Equal(t, *tc.principal, got.Principal)
			}
		})
	}

	t.Run("unsafe request id replaced", func(t *testing.T) {
		resp := h.Do(withHeaders(httptest.NewRequest(http.MethodGet, "/test/items/1", nil), "X-Request-ID", "a b<script>"))
		var got seen
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		assert.NotEqual(t, "a b<script>", got.Request.ID)
		assert.Equal(t, resp.Header.Get("X-Request-ID"), got.Request.ID)
	})
	t.Run("body of unknown length", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/test/files/x", io.NopCloser(strings.NewReader("abc")))
		var got seen
		require.NoError(t, json.NewDecoder(h.Do(req).Body).Decode(&got))
		assert.Equal(t, int64(-1), got.HeaderLength)
	})
}

func withHeaders(r *http.Request, kv ...string) *http.Request {
	for i := 0; i < len(kv); i += 2 {
		r.Header.Set(kv[i], kv[i+1])
	}
	return r
}

func TestPublish(t *testing.T) {
	var rt *sdk.Runtime
	h := start(t, http.NotFoundHandler(), sdktest.Options{
		Manifest: sdk.Manifest{Name: "pub", Version: "1.0.0", Publishes: []string{"pub.*"}},
	}, func(r *sdk.Runtime) { rt = r })
	ctx := t.Context()

	id, err := rt.Publish(ctx, "pub.created", map[string]int{"n": 1})
	require.NoError(t, err)

	_, err = rt.Publish(ctx, "other.created", nil)
	assert.ErrorIs(t, err, sdk.ErrForbidden)

	again, err := rt.PublishWithID(ctx, "fixed-id", "pub.updated", map[string]int{"n": 2})
	require.NoError(t, err)
	assert.Equal(t, "fixed-id", again)
	again, err = rt.PublishWithID(ctx, "fixed-id", "pub.updated", map[string]int{"n": 3})
	require.NoError(t, err)
	assert.Equal(t, "fixed-id", again)

	published := h.Published()
	require.Len(t, published, 2)
	assert.Equal(t, id, published[0].ID)
	assert.Equal(t, "pub.created", published[0].Type)
	assert.Equal(t, "pub", published[0].Source)
	assert.JSONEq(t, `{"n":1}`, string(published[0].Data))
	assert.Equal(t, "fixed-id", published[1].ID)
	assert.JSONEq(t, `{"n":2}`, string(published[1].Data), "a repeated id is stored once, first write wins")
	assert.Less(t, published[0].Sequence, published[1].Sequence)
}

func TestPublishCarriesRequestIDs(t *testing.T) {
	var rt *sdk.Runtime
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := rt.Publish(r.Context(), "test.done", nil); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	h := start(t, handler, sdktest.Options{Manifest: sdk.Manifest{Name: "test", Publishes: []string{"test.done"}}},
		func(r *sdk.Runtime) { rt = r })

	resp := h.Do(withHeaders(httptest.NewRequest(http.MethodPost, "/test/x", nil), "X-Request-ID", "r-9", "X-Correlation-ID", "c-9"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	published := h.Published()
	require.Len(t, published, 1)
	assert.Equal(t, "r-9", published[0].RequestID)
	assert.Equal(t, "c-9", published[0].CorrelationID)
}

func TestDeliver(t *testing.T) {
	var (
		rt       *sdk.Runtime
		received []sdk.Event
		failOnce atomic.Bool
	)
	failOnce.Store(true)
	h := start(t, http.NotFoundHandler(), sdktest.Options{
		Manifest: sdk.Manifest{Name: "sub", Version: "1.0.0", Publishes: []string{"sub.*", "other.*"}, Subscribes: []string{"sub.*"}},
	}, func(r *sdk.Runtime) {
		rt = r
		r.Subscribe("sub.*", func(_ context.Context, ev sdk.Event) error {
			if ev.Type == "sub.flaky" && failOnce.Swap(false) {
				return errors.New("not yet")
			}
			received = append(received, ev)
			return nil
		})
	})
	assert.Equal(t, []string{"sub.*"}, h.Subscribes())
	ctx := t.Context()

	t.Run("handler error", func(t *testing.T) {
		failOnce.Store(true)
		err := h.Deliver(ctx, sdk.Event{Type: "sub.flaky"})
		assert.ErrorContains(t, err, "not yet")
		require.NoError(t, h.Deliver(ctx, sdk.Event{ID: "e1", Type: "sub.flaky", Source: "x", Data: json.RawMessage(`{"a":1}`)}))
		last := received[len(received)-1]
		assert.Equal(t, "e1", last.ID)
		assert.Equal(t, "x", last.Source)
		assert.JSONEq(t, `{"a":1}`, string(last.Data))
	})

	t.Run("published events in order, retried after an error", func(t *testing.T) {
		received = nil
		failOnce.Store(true)
		for _, typ := range []string{"sub.one", "other.skipped", "sub.flaky", "sub.three"} {
			_, err := rt.Publish(ctx, typ, nil)
			require.NoError(t, err)
		}
		assert.ErrorContains(t, h.DeliverPublished(ctx), "not yet")
		require.NoError(t, h.DeliverPublished(ctx))
		require.NoError(t, h.DeliverPublished(ctx), "nothing left to deliver")

		var types []string
		for _, ev := range received {
			types = append(types, ev.Type)
		}
		assert.Equal(t, []string{"sub.one", "sub.flaky", "sub.three"}, types)
		assert.Equal(t, h.Published()[0].ID, received[0].ID)
	})
}

func TestCall(t *testing.T) {
	t.Run("default: no module serves the path", func(t *testing.T) {
		var rt *sdk.Runtime
		start(t, http.NotFoundHandler(), sdktest.Options{}, func(r *sdk.Runtime) { rt = r })
		_, err := rt.Call(t.Context(), "other", http.MethodGet, "/other/x", nil, nil)
		assert.ErrorIs(t, err, sdk.ErrNotFound)
	})
	t.Run("answered by Options.Call", func(t *testing.T) {
		var rt *sdk.Runtime
		call := func(_ context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error) {
			return &modulev1.CallResponse{Status: http.StatusOK, Body: []byte(`{"path":"` + req.GetPath() + `"}`)}, nil
		}
		start(t, http.NotFoundHandler(), sdktest.Options{Call: call}, func(r *sdk.Runtime) { rt = r })
		resp, err := rt.Call(t.Context(), "other", http.MethodGet, "/other/x", nil, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.Status)
		assert.JSONEq(t, `{"path":"/other/x"}`, string(resp.Body))
	})
}

func TestHealth(t *testing.T) {
	var broken atomic.Bool
	h := start(t, http.NotFoundHandler(), sdktest.Options{}, func(rt *sdk.Runtime) {
		rt.HealthCheck(func(context.Context) error {
			if broken.Load() {
				return errors.New("database gone")
			}
			return nil
		})
	})
	require.NoError(t, h.Health(t.Context()))
	broken.Store(true)
	assert.ErrorContains(t, h.Health(t.Context()), "database gone")
}

func TestConfiguration(t *testing.T) {
	var rt *sdk.Runtime
	h := start(t, http.NotFoundHandler(), sdktest.Options{
		ManifestFile: "testdata/module_meta.json",
		Settings:     map[string]string{"FILE_GREETING": "hi"},
		Mode:         "production",
	}, func(r *sdk.Runtime) { rt = r })
	assert.Equal(t, "file", h.Manifest().Name)
	assert.Equal(t, "2.0.0", rt.Manifest().Version)
	assert.Equal(t, "hi", rt.Setting("FILE_GREETING"))
	assert.Equal(t, "production", rt.Mode())
	assert.Equal(t, "sqlite", rt.Database().Driver)
	assert.DirExists(t, rt.DataDir())
}

func TestShutdownAtCleanup(t *testing.T) {
	var stopped atomic.Bool
	t.Run("module", func(t *testing.T) {
		start(t, http.NotFoundHandler(), sdktest.Options{}, func(rt *sdk.Runtime) {
			rt.OnShutdown(func(context.Context) error { stopped.Store(true); return nil })
		})
	})
	assert.True(t, stopped.Load())
}

// BenchmarkGET compares a tiny GET served through the bridge (both halves of
// it, over the direct Unix socket, and over gRPC streams on an in-memory
// connection) with the same handler called directly. It measures one
// request at a time: latency, not the CPU a request costs under load, which
// is what the bench program (make bench) compares.
func BenchmarkGET(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/test/ok", nil))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	for _, tc := range []struct {
		name string
		opts sdktest.Options
	}{
		{"bridge", sdktest.Options{}},
		{"bridge-grpc", sdktest.Options{GRPCOnly: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := start(b, handler, tc.opts, nil, sdk.Route{Method: http.MethodGet, Path: "/test/ok"})
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.Do(httptest.NewRequest(http.MethodGet, "/test/ok", nil)); resp.StatusCode != http.StatusOK {
					b.Fatal(resp.StatusCode)
				}
			}
		})
	}
}

// TestGreeter runs what the examples show.
func TestGreeter(t *testing.T) {
	h := sdktest.Start(t, greeter(), sdktest.Options{
		Manifest: sdk.Manifest{
			Name: "greeter", Version: "1.0.0",
			Publishes: []string{"greeter.greeted"}, Subscribes: []string{"greeter.greeted"},
		},
	})
	ada := sdktest.AsPrincipal(sdk.Principal{Subject: "u1", DisplayName: "Ada", Roles: []string{"viewer"}})
	greet := func() string {
		resp := h.Do(httptest.NewRequest(http.MethodGet, "/greeter/hello", nil), ada)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}

	assert.Equal(t, "Hello, Ada! (0 before you)", greet())
	require.Len(t, h.Published(), 1)
	assert.JSONEq(t, `{"who":"u1"}`, string(h.Published()[0].Data))
	require.NoError(t, h.DeliverPublished(t.Context()))
	assert.Equal(t, "Hello, Ada! (1 before you)", greet())

	resp, err := http.Get(h.URL() + "/greeter/hello")
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEmpty(t, resp.Header.Get("X-Request-ID"))
}
