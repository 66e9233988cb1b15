package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/metrics"
	"github.com/chacc/chacc/core/modules"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

type observation struct {
	module, route, method string
	code                  int
}

type fakeObserver struct {
	mu  sync.Mutex
	got []observation
}

func (f *fakeObserver) ObserveRequest(module, route, method string, code int, _ time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, observation{module, route, method, code})
}

// instrumented is an Echo with the instrument middleware and stand-ins for
// a core route and the proxy.
func instrumented(obs RequestObserver) *echo.Echo {
	s := &Server{cfg: Config{Observer: obs}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.Use(s.instrument)
	e.GET("/modules/:name", func(c echo.Context) error {
		return core.Errorf(core.ENOTFOUND, "NOT_FOUND", "Module not found.")
	})
	items := &modulev1.Route{Method: "GET", Path: "/hello/items/:id"}
	e.Any("/*", func(c echo.Context) error {
		t := modules.Target{}
		switch p := c.Request().URL.Path; {
		case len(p) > 12 && p[:12] == "/hello/items":
			t = modules.Target{Module: "hello", Route: items}
		case p == "/hello/nothing":
			t = modules.Target{Module: "hello"}
		}
		c.Set(ctxState, &reqState{target: t, hasTarget: true})
		if t.Module == "" {
			return core.Errorf(core.ENOTFOUND, "NOT_FOUND", "Not found.")
		}
		if c.QueryParam("fail") != "" {
			return &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "MODULE_UNAVAILABLE", Message: "down"}
		}
		return c.NoContent(http.StatusOK)
	})
	return e
}

func TestInstrumentLabels(t *testing.T) {
	obs := &fakeObserver{}
	e := instrumented(obs)
	for _, tc := range []struct {
		method, path string
		want         observation
	}{
		{"GET", "/hello/items/42", observation{"hello", "/hello/items/:id", "GET", 200}},
		{"GET", "/hello/items/43?fail=1", observation{"hello", "/hello/items/:id", "GET", 503}},
		{"GET", "/hello/nothing", observation{"hello", "unmatched", "GET", 200}},
		{"GET", "/random/x/y", observation{"core", "unmatched", "GET", 404}},
		{"GET", "/modules/abc", observation{"core", "/modules/:name", "GET", 404}},
	} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		require.NotEmpty(t, obs.got, tc.path)
		assert.Equal(t, tc.want, obs.got[len(obs.got)-1], tc.path)
		assert.Equal(t, tc.want.code, rec.Code, "the error was rendered once, with the status observed")
	}
	assert.Len(t, obs.got, 5)
}

// BenchmarkInstrument measures what the metrics middleware adds to a request
// (the proxy's lookup result already on the context): compare "metrics"
// with "bare".
func BenchmarkInstrument(b *testing.B) {
	for _, bc := range []struct {
		name string
		obs  RequestObserver
	}{{"bare", nil}, {"metrics", metrics.New(nil, nil, nil)}} {
		b.Run(bc.name, func(b *testing.B) {
			e := instrumented(bc.obs)
			req := httptest.NewRequest("GET", "/hello/items/42", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				e.ServeHTTP(w, req)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
