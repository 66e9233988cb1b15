package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/modules"
)

type fakeSource struct {
	StatsFn func() []modules.Stat
}

func (f fakeSource) Stats() []modules.Stat { return f.StatsFn() }

// scrape returns the text /metrics serves.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestHTTPSeries(t *testing.T) {
	m := New(nil, nil, nil)
	for range 3 {
		m.ObserveRequest("hello", "/hello/items/:id", "GET", 200, 3*time.Millisecond)
	}
	m.ObserveRequest("hello", "/hello/items/:id", "GET", 503, 2*time.Second)
	m.ObserveRequest("core", "/modules/:name", "POST", 404, time.Millisecond)
	m.ObserveRequest("core", "unmatched", "BREW", 500, time.Millisecond)
	out := scrape(t, m)

	for _, want := range []string{
		`chacc_http_requests_total{code="200",method="GET",module="hello",route="/hello/items/:id"} 3`,
		`chacc_http_requests_total{code="503",method="GET",module="hello",route="/hello/items/:id"} 1`,
		`chacc_http_requests_total{code="404",method="POST",module="core",route="/modules/:name"} 1`,
		`chacc_http_request_errors_total{code="503",method="GET",module="hello",route="/hello/items/:id"} 1`,
		`chacc_http_request_errors_total{code="500",method="OTHER",module="core",route="unmatched"} 1`,
		`chacc_http_request_duration_seconds_count{method="GET",module="hello",route="/hello/items/:id"} 4`,
		`chacc_http_request_duration_seconds_bucket{method="GET",module="hello",route="/hello/items/:id",le="0.005"} 3`,
		`chacc_http_request_duration_seconds_bucket{method="GET",module="hello",route="/hello/items/:id",le="2.5"} 4`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		assert.Contains(t, out, want)
	}
	// Only 5xx answers are errors.
	assert.NotContains(t, out, `chacc_http_request_errors_total{code="200"`)
	assert.NotContains(t, out, `chacc_http_request_errors_total{code="404"`)
	assert.NotContains(t, out, `method="BREW"`)
}

func TestModuleAndEventCollectors(t *testing.T) {
	src := fakeSource{StatsFn: func() []modules.Stat {
		return []modules.Stat{
			{Name: "hello", State: core.StateRunning, Restarts: 2, PID: os.Getpid(), InFlight: 3},
			{Name: "sleepy", State: core.StateCrashed, Restarts: 5},
		}
	}}
	lag := func(context.Context) (map[string]int64, error) {
		return map[string]int64{"hello": 4, "webhooks": 9}, nil
	}
	out := scrape(t, New(src, lag, nil))
	for _, want := range []string{
		`chacc_module_state{module="hello",state="running"} 1`,
		`chacc_module_state{module="hello",state="crashed"} 0`,
		`chacc_module_state{module="sleepy",state="crashed"} 1`,
		`chacc_module_state{module="sleepy",state="running"} 0`,
		`chacc_module_restarts_total{module="hello"} 2`,
		`chacc_module_inflight_requests{module="hello"} 3`,
		`chacc_module_rss_bytes{module="hello"} `,
		`chacc_module_cpu_seconds_total{module="hello"} `,
		`chacc_events_delivery_lag{subscriber="hello"} 4`,
		`chacc_events_delivery_lag{subscriber="webhooks"} 9`,
		"chacc_events_outbox_depth 9",
	} {
		assert.Contains(t, out, want)
	}
	// No process, no process metrics.
	assert.NotContains(t, out, `chacc_module_rss_bytes{module="sleepy"}`)

	// A failing lag read leaves the rest of the scrape alone.
	failing := func(context.Context) (map[string]int64, error) { return nil, errors.New("db down") }
	out = scrape(t, New(src, failing, nil))
	assert.Contains(t, out, `chacc_module_state{module="hello",state="running"} 1`)
	assert.NotContains(t, out, "chacc_events_outbox_depth")
}

func TestReadProc(t *testing.T) {
	self, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	assert.Greater(t, self.rssBytes, int64(0))

	old := procRoot
	t.Cleanup(func() { procRoot = old })
	procRoot = t.TempDir()
	dir := filepath.Join(procRoot, "42")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "statm"), []byte("1000 250 30 1 0 100 0\n"), 0o644))
	// A comm with a space and a ')' must not shift the fields.
	fields := "S 1 42 42 0 -1 4194304 100 0 0 0 " + "150 50" + " 0 0 20 0 1 0 100 0 0"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte("42 (my mod) x) "+fields+"\n"), 0o644))
	ps, err := readProc(42)
	require.NoError(t, err)
	assert.Equal(t, 250*pageSize, ps.rssBytes)
	assert.InDelta(t, 2.0, ps.cpuSeconds, 1e-9)

	_, err = readProc(43)
	assert.Error(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte("42 (x) S 1"), 0o644))
	_, err = readProc(42)
	assert.True(t, err != nil && strings.Contains(err.Error(), "fields"), "%v", err)
}

// BenchmarkObserveRequest is the metrics' share of a request's cost.
func BenchmarkObserveRequest(b *testing.B) {
	m := New(nil, nil, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest("hello", "/hello/items/:id", "GET", 200, time.Millisecond)
		}
	})
}
