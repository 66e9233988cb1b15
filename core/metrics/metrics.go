// Package metrics is the core's GET /metrics: Prometheus metrics in a
// registry of the core's own (plus the Go runtime and process collectors).
//
// HTTP, recorded per request by the middleware in core/httpapi:
//
//	chacc_http_requests_total{module,route,method,code}
//	chacc_http_request_errors_total{module,route,method,code}   5xx answers only
//	chacc_http_request_duration_seconds{module,route,method}    histogram
//
// module is "core" for the core's own routes; route is the declared route
// pattern ("/hello/items/:id", or the core's "/modules/:name"), never the
// raw path, and "unmatched" for a path no declared route matches, so the
// number of series stays bounded whatever clients send.
//
// Modules and events, read when scraped:
//
//	chacc_module_state{module,state}            1 for the current state, 0 for the others
//	chacc_module_restarts_total{module}         restarts after crashes (reset by an upgrade)
//	chacc_module_inflight_requests{module}
//	chacc_module_rss_bytes{module}              from /proc/<pid>/statm
//	chacc_module_cpu_seconds_total{module}      from /proc/<pid>/stat (user + system)
//	chacc_events_outbox_depth                   events the slowest subscriber has not had yet
//	chacc_events_delivery_lag{subscriber}       events not yet delivered to each subscriber
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/modules"
)

// ModuleSource lists the installed modules ([modules.Manager] is one).
type ModuleSource interface {
	Stats() []modules.Stat
}

// LagFunc returns, per subscriber, the events not yet delivered to it
// ([events.Bus.Lag] is one).
type LagFunc func(ctx context.Context) (map[string]int64, error)

// Metrics holds the core's registry and its HTTP series.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches the children of the vectors per label set, so that a
	// request costs a map lookup instead of label hashing.
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	module, route, method string
	code                  int
}

type series struct {
	requests prometheus.Counter
	errors   prometheus.Counter // nil below 500
	duration prometheus.Observer
}

// Buckets are the latency histogram's upper bounds, in seconds.
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// New returns the metrics. mods and lag may be nil (no module or event
// metrics); log reports failures to read them.
func New(mods ModuleSource, lag LagFunc, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chacc_http_requests_total",
			Help: "HTTP requests answered, by module (core for the core's routes), declared route, method and status code.",
		}, []string{"module", "route", "method", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chacc_http_request_errors_total",
			Help: "HTTP requests answered with a 5xx status, by module, declared route, method and status code.",
		}, []string{"module", "route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chacc_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (to the end of the body), by module, declared route and method.",
			Buckets: Buckets,
		}, []string{"module", "route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.errors, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if mods != nil {
		m.reg.MustRegister(&moduleCollector{src: mods})
	}
	if lag != nil {
		m.reg.MustRegister(&eventCollector{lag: lag, log: log})
	}
	return m
}

// Registry is the registry /metrics serves; more collectors may be added.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest records one answered request. route must be a declared
// pattern or "unmatched" (see the package doc).
func (m *Metrics) ObserveRequest(module, route, method string, code int, d time.Duration) {
	k := seriesKey{module: module, route: route, method: normMethod(method), code: code}
	s, ok := m.series.Load(k)
	if !ok {
		s, _ = m.series.LoadOrStore(k, m.newSeries(k))
	}
	sr := s.(*series)
	sr.requests.Inc()
	if sr.errors != nil {
		sr.errors.Inc()
	}
	sr.duration.Observe(d.Seconds())
}

func (m *Metrics) newSeries(k seriesKey) *series {
	code := strconv.Itoa(k.code)
	s := &series{
		requests: m.requests.WithLabelValues(k.module, k.route, k.method, code),
		duration: m.duration.WithLabelValues(k.module, k.route, k.method),
	}
	if k.code >= 500 {
		s.errors = m.errors.WithLabelValues(k.module, k.route, k.method, code)
	}
	return s
}

// normMethod keeps the method label bounded: any method that is not a
// standard one is "OTHER".
func normMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

var states = []core.State{core.StateRunning, core.StateStarting, core.StateStopped, core.StateCrashed, core.StateFailed}

var (
	descState    = prometheus.NewDesc("chacc_module_state", "Module state: 1 for the current state, 0 for the others.", []string{"module", "state"}, nil)
	descRestarts = prometheus.NewDesc("chacc_module_restarts_total", "Restarts of the module after a crash (reset when it is installed or upgraded).", []string{"module"}, nil)
	descInflight = prometheus.NewDesc("chacc_module_inflight_requests", "Requests and event deliveries the module's process is serving.", []string{"module"}, nil)
	descRSS      = prometheus.NewDesc("chacc_module_rss_bytes", "Resident memory of the module's process.", []string{"module"}, nil)
	descCPU      = prometheus.NewDesc("chacc_module_cpu_seconds_total", "User and system CPU time of the module's current process.", []string{"module"}, nil)
	descDepth    = prometheus.NewDesc("chacc_events_outbox_depth", "Events in the outbox not yet delivered to the slowest subscriber.", nil, nil)
	descLag      = prometheus.NewDesc("chacc_events_delivery_lag", "Events not yet delivered to the subscriber.", []string{"subscriber"}, nil)
)

// moduleCollector reads the modules' state and their processes at scrape
// time.
type moduleCollector struct{ src ModuleSource }

func (c *moduleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descRestarts, descInflight, descRSS, descCPU} {
		ch <- d
	}
}

func (c *moduleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src.Stats() {
		for _, s := range states {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, st.Name, string(s))
		}
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(st.Restarts), st.Name)
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(st.InFlight), st.Name)
		if st.PID <= 0 {
			continue
		}
		if p, err := readProc(st.PID); err == nil {
			ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, float64(p.rssBytes), st.Name)
			ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, p.cpuSeconds, st.Name)
		}
	}
}

// eventCollector reads the subscribers' lag at scrape time.
type eventCollector struct {
	lag LagFunc
	log *slog.Logger
}

func (c *eventCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDepth
	ch <- descLag
}

func (c *eventCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lags, err := c.lag(ctx)
	if err != nil {
		// The rest of the scrape is still worth having.
		c.log.Warn("metrics: event lag unavailable", "error", err)
		return
	}
	var depth int64
	for sub, n := range lags {
		n = max(n, 0)
		depth = max(depth, n)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(n), sub)
	}
	ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(depth))
}
