package helloapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

// manifestFile is the module's manifest, beside main.go.
const manifestFile = "../module_meta.json"

// start runs the module in-process, configured with its own manifest, on db
// (nil: a fresh SQLite file).
func start(t *testing.T, db *sdk.Database) *sdktest.Harness {
	t.Helper()
	return sdktest.Start(t, Module(), sdktest.Options{ManifestFile: manifestFile, Database: db})
}

// eachDatabase runs test with a fresh SQLite namespace, and with a fresh
// Postgres one when DATABASE_URL is set.
func eachDatabase(t *testing.T, test func(t *testing.T, db *sdk.Database)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sdktest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, sdktest.Postgres(t)) })
}

// do serves one request and decodes the JSON answer into a map.
func do(t *testing.T, h *sdktest.Harness, method, target, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp := h.Do(httptest.NewRequest(method, target, strings.NewReader(body)))
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	return resp, got
}

// assertError checks an answer in the chacc error shape.
func assertError(t *testing.T, resp *http.Response, got map[string]any, status int, code string) {
	t.Helper()
	assert.Equal(t, status, resp.StatusCode)
	assert.Equal(t, code, got["error_code"])
	assert.NotEmpty(t, got["detail"])
	assert.Equal(t, resp.Header.Get("X-Request-ID"), got["request_id"])
}

func TestEveryDeclaredRouteIsServed(t *testing.T) {
	var served []string
	for _, r := range (&API{}).Handler().(*echo.Echo).Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	for _, r := range Routes {
		assert.Contains(t, served, r.Method+" "+r.Path)
	}
	assert.Len(t, served, len(Routes))
}

func TestPing(t *testing.T) {
	h := start(t, nil)
	require.NoError(t, h.Health(t.Context()))
	resp, got := do(t, h, http.MethodGet, "/hello/ping", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"pong": true, "version": "0.1.0"}, got)
}

func TestUnknownRoutes(t *testing.T) {
	h := start(t, nil)
	resp, got := do(t, h, http.MethodGet, "/hello/nope", "")
	assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")
	resp, got = do(t, h, http.MethodDelete, "/hello/ping", "")
	assertError(t, resp, got, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
}

func TestEcho(t *testing.T) {
	h := start(t, nil)
	large := make([]byte, 8<<20)
	rand.Read(large)

	tests := []struct {
		name        string
		body        []byte
		contentType string
		wantType    string
	}{
		{name: "text", body: []byte("hello"), contentType: "text/plain; charset=utf-8", wantType: "text/plain; charset=utf-8"},
		{name: "no content type", body: []byte{0, 1, 2}, wantType: "application/octet-stream"},
		{name: "empty", body: nil, contentType: "application/json", wantType: "application/json"},
		{name: "8 MiB", body: large, wantType: "application/octet-stream"},
	}
	for _, tc := range tests {
		// Through a real connection: the answer streams back while the
		// body is still being sent.
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL()+"/hello/echo", bytes.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tc.wantType, resp.Header.Get("Content-Type"))
			assert.True(t, bytes.Equal(tc.body, got), "echoed %d bytes, sent %d", len(got), len(tc.body))
		})
	}
}

func TestSSE(t *testing.T) {
	h := start(t, nil)

	tests := []struct {
		name, query string
		wantTicks   int
	}{
		{"default", "", 3},
		{"n and interval", "?n=2&interval_ms=1", 2},
		{"none", "?n=0", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Do(httptest.NewRequest(http.MethodGet, "/hello/sse"+tc.query, nil))
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
			var want strings.Builder
			for i := 1; i <= tc.wantTicks; i++ {
				want.WriteString("event: tick\nid: " + strconv.Itoa(i) + "\ndata: {\"n\": " + strconv.Itoa(i) + "}\n\n")
			}
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, want.String(), string(body))
		})
	}

	for _, query := range []string{"n=-1", "n=abc", "n=10001", "interval_ms=10001", "interval_ms=1.5"} {
		t.Run("invalid "+query, func(t *testing.T) {
			resp, got := do(t, h, http.MethodGet, "/hello/sse?"+query, "")
			assertError(t, resp, got, http.StatusBadRequest, "VALIDATION_ERROR")
		})
	}

	t.Run("streamed, and the client may leave", func(t *testing.T) {
		// The second tick is 10 s away: the first must arrive long before,
		// and the guard fails the test if it does not.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL()+"/hello/sse?n=2&interval_ms=10000", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var first []string
		for {
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			if line == "\n" {
				break
			}
			first = append(first, line)
		}
		assert.Equal(t, []string{"event: tick\n", "id: 1\n", "data: {\"n\": 1}\n"}, first)
	})
}

func TestEventRoundTrip(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		h := start(t, db)
		ctx := t.Context()
		list := func() map[string]any {
			t.Helper()
			resp, got := do(t, h, http.MethodGet, "/hello/events", "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			return got
		}
		assert.Equal(t, map[string]any{"ids": []any{}, "count": 0.0}, list())

		resp, got := do(t, h, http.MethodPost, "/hello/events", `{"id": "a-1"}`)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		published := h.Published()
		require.Len(t, published, 1)
		ev := published[0]
		assert.Equal(t, map[string]any{"event_id": ev.ID, "id": "a-1"}, got)
		assert.Equal(t, "hello.event", ev.Type)
		assert.Equal(t, "hello", ev.Source)
		assert.JSONEq(t, `{"id": "a-1"}`, string(ev.Data))
		assert.Equal(t, resp.Header.Get("X-Request-ID"), ev.RequestID)

		// Nothing is recorded before the core delivers the event.
		assert.Equal(t, 0.0, list()["count"])
		require.NoError(t, h.DeliverPublished(ctx))
		assert.Equal(t, map[string]any{"ids": []any{"a-1"}, "count": 1.0}, list())

		// A redelivered event changes nothing and succeeds.
		require.NoError(t, h.Deliver(ctx, ev))
		assert.Equal(t, 1.0, list()["count"])

		// A later event with the same id neither.
		for _, id := range []string{"b.2", "a-1", "C_3"} {
			resp, _ := do(t, h, http.MethodPost, "/hello/events", `{"id": "`+id+`"}`)
			require.Equal(t, http.StatusAccepted, resp.StatusCode)
		}
		require.NoError(t, h.DeliverPublished(ctx))
		assert.Equal(t, map[string]any{"ids": []any{"a-1", "b.2", "C_3"}, "count": 3.0}, list())
	})
}

func TestSecondInstanceSharesTheData(t *testing.T) {
	// An upgrade starts the new version beside the old one, on the same
	// database: its migrations find nothing to do, and it sees the data.
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		old := start(t, db)
		resp, _ := do(t, old, http.MethodPost, "/hello/events", `{"id": "kept"}`)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.NoError(t, old.DeliverPublished(t.Context()))

		_, got := do(t, start(t, db), http.MethodGet, "/hello/events", "")
		assert.Equal(t, map[string]any{"ids": []any{"kept"}, "count": 1.0}, got)
	})
}

func TestPublishInvalid(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not JSON", `id=a`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"no id", `{}`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"id not a string", `{"id": 1}`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"id with a space", `{"id": "a b"}`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"id with a slash", `{"id": "a/b"}`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"id too long", `{"id": "` + strings.Repeat("x", 129) + `"}`, http.StatusBadRequest, "VALIDATION_ERROR"},
		{"body too large", `{"id": "a", "pad": "` + strings.Repeat("x", maxEventBody) + `"}`, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := do(t, h, http.MethodPost, "/hello/events", tc.body)
			assertError(t, resp, got, tc.status, tc.code)
		})
	}
	assert.Empty(t, h.Published())

	resp, _ := do(t, h, http.MethodPost, "/hello/events", `{"id": "`+strings.Repeat("x", 128)+`"}`)
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, "128 characters is the limit")
}

func TestMalformedEventIsAcknowledged(t *testing.T) {
	h := start(t, nil)
	err := h.Deliver(t.Context(), sdk.Event{Type: EventType, Source: "other", Data: json.RawMessage(`{"id": "a b"}`)})
	require.NoError(t, err, "a malformed event must not be retried forever")

	_, got := do(t, h, http.MethodGet, "/hello/events", "")
	assert.Equal(t, 0.0, got["count"])
	assert.True(t, slices.ContainsFunc(h.Logs(), func(l *modulev1.LogRequest) bool {
		return l.GetMessage() == "malformed hello.event ignored"
	}))
}

func TestRelayCallsThroughTheHost(t *testing.T) {
	var got *modulev1.CallRequest
	h := sdktest.Start(t, Module(), sdktest.Options{ManifestFile: manifestFile, Call: func(_ context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error) {
		got = req
		return &modulev1.CallResponse{Status: 200, Body: []byte(`{"pong":true}`)}, nil
	}})
	resp, body := do(t, h, http.MethodGet, "/hello/relay", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"status": float64(200), "response": map[string]any{"pong": true}}, body)
	require.NotNil(t, got)
	assert.Equal(t, "hello", got.GetModule())
	assert.Equal(t, "/hello/ping", got.GetPath())
	assert.NotEmpty(t, got.GetRequestId(), "the request id travels with the call")

	// The default fake host knows no module: the relay reports a bad gateway.
	resp, _ = do(t, start(t, nil), http.MethodGet, "/hello/relay", "")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
}

func TestItems(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		h := start(t, db)
		resp, created := do(t, h, http.MethodPost, "/hello/items", `{"name": "first"}`)
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		id, ok := created["id"].(float64)
		require.True(t, ok, "id in %v", created)
		assert.Equal(t, "first", created["name"])

		resp, got := do(t, h, http.MethodGet, "/hello/items/"+strconv.Itoa(int(id)), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, created, got)

		resp, got = do(t, h, http.MethodGet, "/hello/items/"+strconv.Itoa(int(id)+1), "")
		assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")
		resp, got = do(t, h, http.MethodGet, "/hello/items/x", "")
		assertError(t, resp, got, http.StatusBadRequest, "VALIDATION_ERROR")

		for _, body := range []string{`{}`, `{"name": ""}`, `name=a`, `{"name": "` + strings.Repeat("x", maxItemName+1) + `"}`} {
			resp, got := do(t, h, http.MethodPost, "/hello/items", body)
			assertError(t, resp, got, http.StatusBadRequest, "VALIDATION_ERROR")
		}
	})
}

// BenchmarkItem serves GET /hello/items/:id through the bridge (sdktest) and
// directly from the handler, on SQLite.
func BenchmarkItem(b *testing.B) {
	h := sdktest.Start(b, Module(), sdktest.Options{ManifestFile: manifestFile})
	resp := h.Do(httptest.NewRequest(http.MethodPost, "/hello/items", strings.NewReader(`{"name": "bench"}`)))
	require.Equal(b, http.StatusCreated, resp.StatusCode)
	st, err := OpenStore(b.Context(), *sdktest.SQLite(b))
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	_, err = st.CreateItem(b.Context(), "bench")
	require.NoError(b, err)
	direct := NewAPI(nil, st).Handler()

	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			direct.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hello/items/1", nil))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("bridge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if resp := h.Do(httptest.NewRequest(http.MethodGet, "/hello/items/1", nil)); resp.StatusCode != http.StatusOK {
				b.Fatal(resp.StatusCode)
			}
		}
	})
}

func TestWhoami(t *testing.T) {
	h := start(t, nil)
	// Anonymous: with no authenticator enabled the core lets the request in.
	resp, got := do(t, h, http.MethodGet, "/hello/whoami", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"authenticated": false}, got)

	// Authenticated: the principal the core put in the request message.
	resp = h.Do(httptest.NewRequest(http.MethodGet, "/hello/whoami", nil), sdktest.AsPrincipal(sdk.Principal{
		Subject: "u1", DisplayName: "Ada", Roles: []string{"viewer"}, Method: "jwt",
		Attributes: map[string]string{"family": "f1"},
	}))
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, true, got["authenticated"])
	assert.Equal(t, "u1", got["subject"])
	assert.Equal(t, "Ada", got["display_name"])
	assert.Equal(t, []any{"viewer"}, got["roles"])
	assert.Equal(t, "jwt", got["method"])
	assert.Equal(t, map[string]any{"family": "f1"}, got["attributes"])
}
