package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	coreconfig "github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/store/storetest"
)

// config is how long and how often each figure is measured.
type config struct {
	quick           bool
	rounds          int
	warmup, measure time.Duration
	conns           int
	rate            int
	openWarmup      time.Duration
	openMeasure     time.Duration
	lifecycleRuns   int
	echoPerRound    int
	ssePerRound     int
	sseEvents       int
	items           int
	out             string
	only            map[string]bool // figures to measure; all when empty
}

// want tells whether figure id ("a", "b", ...) is to be measured.
func (c config) want(id string) bool { return len(c.only) == 0 || c.only[id] }

func newConfig() config {
	c := config{
		rounds: 5, warmup: time.Second, measure: 3 * time.Second, conns: 64,
		rate: 1000, openWarmup: time.Second, openMeasure: 3 * time.Second,
		lifecycleRuns: 10, echoPerRound: 20, ssePerRound: 3, sseEvents: 100, items: 100,
		out: "bench/results.json",
	}
	if os.Getenv("BENCH_QUICK") == "1" {
		c.quick, c.rounds, c.warmup, c.measure = true, 3, 300*time.Millisecond, time.Second
		c.openWarmup, c.openMeasure = 300*time.Millisecond, 1500*time.Millisecond
		c.lifecycleRuns, c.echoPerRound, c.ssePerRound = 5, 10, 3
	}
	if o := os.Getenv("BENCH_OUT"); o != "" {
		c.out = o
	}
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		c.only = map[string]bool{}
		for _, id := range strings.Split(only, ",") {
			c.only[strings.TrimSpace(id)] = true
		}
	}
	return c
}

// stack is one database's set of contenders.
type stack struct {
	db     string // "sqlite" or "postgres"
	core   *proc  // chacc serve, hello installed
	inproc *proc  // the hello handler in-process
	micro  *proc  // ReverseProxy to inproc
	// More contenders for (a) and (d), on the SQLite stack: the core with
	// the bridges it no longer uses by default and with Go's default
	// GOMAXPROCS, the in-process server on half the CPUs, and the floor.
	extra []contender
	seed  []*proc // extra servers of the hello handler, seeded as inproc is
}

func (s *stack) contenders() []contender {
	return []contender{{"chacc", s.core.url}, {"inproc", s.inproc.url}, {"micro", s.micro.url}}
}

type contender struct {
	key  string // "chacc", "inproc", "micro", or one of extraContenders
	base string
}

// extraContenders are the keys of stack.extra, and what each is.
var extraContenders = []struct{ key, what string }{
	{"conns", "chacc, CHACC_BRIDGE=conns (one exchange per connection)"},
	{"grpc", "chacc, CHACC_BRIDGE=grpc (go-plugin gRPC streams)"},
	{"allcpus", "chacc, CHACC_GOMAXPROCS=0 CHACC_MODULE_GOMAXPROCS=0 (core and module each on every CPU, Go's default)"},
	{"inprochalf", "in-process server with GOMAXPROCS at half the CPUs, as chacc's processes (the in-process column runs with Go's default)"},
	{"hop", "floor: in-process + one bare 64-byte round trip to another process per request, both processes with GOMAXPROCS at half the CPUs"},
	{"inprocgogc", "in-process server with GOGC=400, chacc's default (the in-process column runs with Go's default, 100)"},
}

// extraFor are the extra contenders measured in figure id: every one in
// (a); in (b) the baselines and the floor, which tell what any bridge could
// reach on the handler; in (d) the other bridge and the floor.
func (s *stack) extraFor(id string) []contender {
	keep := map[string][]string{
		"b": {"inprochalf", "hop", "inprocgogc"},
		"d": {"grpc", "hop"},
	}[id]
	var out []contender
	for _, c := range s.extra {
		if id == "a" || slices.Contains(keep, c.key) {
			out = append(out, c)
		}
	}
	return out
}

type suite struct {
	cfg      config
	root     string
	dir      string
	art      *artifacts
	archive  []byte
	self     string
	procs    []*proc
	cleanups []func()
	res      *results
}

func run() error {
	cfg := newConfig()
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "chacc-bench-")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s := &suite{cfg: cfg, root: root, dir: dir, self: self, res: &results{
		Machine: describeMachine(), Started: start.UTC().Format(time.RFC3339), Quick: cfg.quick,
		Settings: settings{Rounds: cfg.rounds, WarmupSeconds: cfg.warmup.Seconds(), MeasureSeconds: cfg.measure.Seconds(),
			Connections: cfg.conns, OpenLoopRate: cfg.rate},
	}}
	defer s.close()
	if err := s.runAll(); err != nil {
		return err
	}
	s.res.Seconds = time.Since(start).Seconds()
	printTable(os.Stdout, s.res)
	out := cfg.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := writeJSON(out, s.res); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s (%.0fs)\n", out, s.res.Seconds)
	return nil
}

func (s *suite) close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	_ = os.RemoveAll(s.dir)
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (s *suite) note(format string, args ...any) {
	s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, args...))
}

func (s *suite) runAll() error {
	s.logf("building the core and the hello module")
	art, err := build(s.root, s.dir)
	if err != nil {
		return err
	}
	s.art = art
	if s.archive, err = os.ReadFile(art.hello); err != nil {
		return err
	}
	s.res.Settings.ExecutableMB = float64(art.helloExeBytes) / (1 << 20)
	s.res.Settings.ArchiveMB = float64(art.helloArchiveBytes) / (1 << 20)

	lite, err := s.startStack("sqlite", "")
	if err != nil {
		return err
	}
	var pg *stack
	if serverURL := os.Getenv("DATABASE_URL"); serverURL != "" {
		dbURL, drop, err := storetest.CreatePostgres(context.Background(), serverURL)
		if err != nil {
			return err
		}
		s.cleanups = append(s.cleanups, func() {
			if err := drop(); err != nil {
				s.logf("%v", err)
			}
		})
		if pg, err = s.startStack("postgres", dbURL); err != nil {
			return err
		}
	} else {
		s.note("DATABASE_URL is not set: the Postgres row of (b) was skipped.")
	}

	ping := []string{"/hello/ping"}
	itemPaths := make([]string, s.cfg.items)
	for i := range itemPaths {
		itemPaths[i] = "/hello/items/" + strconv.Itoa(i+1)
	}
	if s.cfg.want("a") {
		s.logf("(a) GET /hello/ping, %d connections", s.cfg.conns)
		a, err := s.throughputOf("a", "GET /hello/ping", append(lite.contenders(), lite.extraFor("a")...), ping)
		if err != nil {
			return err
		}
		a.compared(ratio, "chacc ÷ in-process")
		a.Target = "≥ 0.60"
		a.Met = ptr(*a.Ratio >= 0.60)
		s.add(a)
		s.add(figure{ID: "a÷c", What: "GET /hello/ping: chacc ÷ microservice", Unit: "×",
			Ratio: ratio(a.Chacc, a.Micro), RatioOf: "chacc ÷ microservice", Target: "≥ 1.30",
			Met: ptr(*ratio(a.Chacc, a.Micro) >= 1.30)})
		s.addBaselines(a, "GET /hello/ping")
	}

	if s.cfg.want("j") {
		s.logf("(j) GET /hello/whoami with a JWT vs GET /hello/ping without, through the core")
		if err := s.authCost(); err != nil {
			return err
		}
	}

	for _, st := range []*stack{lite, pg} {
		if st == nil || !s.cfg.want("b") {
			continue
		}
		s.logf("(b) GET /hello/items/:id on %s", st.db)
		b, err := s.throughputOf("b", "GET /hello/items/:id ("+st.db+")", append(st.contenders(), st.extraFor("b")...), itemPaths)
		if err != nil {
			return err
		}
		b.compared(ratio, "chacc ÷ in-process")
		b.Target = "≥ 0.90"
		b.Met = ptr(*b.Ratio >= 0.90)
		s.add(b)
		s.add(figure{ID: "b÷c", What: "items (" + st.db + "): chacc ÷ microservice", Unit: "×",
			Ratio: ratio(b.Chacc, b.Micro), RatioOf: "chacc ÷ microservice"})
		s.addBaselines(b, "items ("+st.db+")")
	}

	for _, step := range []struct {
		id, what string
		run      func() error
	}{
		{"d", fmt.Sprintf("(d) latency at %d req/s", s.cfg.rate), func() error { return s.latency(lite, ping) }},
		{"h", "(h) 1 MiB POST /hello/echo", func() error { return s.echo(lite) }},
		{"i", "(i) server-sent events", func() error { return s.sse(lite) }},
		{"g", "(g) resident memory", func() error { return s.rss(lite, "after load") }},
		{"f", "(f) kill -9 → first 200", func() error { return s.killRecovery(lite) }},
		{"e", "(e) upload → first 200", func() error { return s.installTime(lite) }},
		{"g", "(g) resident memory of an idle module", func() error { return s.rss(lite, "idle") }},
	} {
		if !s.cfg.want(step.id) {
			continue
		}
		s.logf("%s", step.what)
		if err := step.run(); err != nil {
			return err
		}
	}
	return nil
}

// startStack starts a core with hello installed, the in-process server and
// the gateway in front of it, all on one database, and seeds items in both.
func (s *suite) startStack(db, dbURL string) (*stack, error) {
	st := &stack{db: db}
	base := filepath.Join(s.dir, db)
	var err error
	if st.core, err = startCore("core-"+db, s.art.chacc, filepath.Join(base, "core"), dbURL); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, st.core)
	if err := install(st.core.url, s.archive); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, st.core.log.tail(30))
	}
	driver, dsn := "sqlite", ""
	if db == "sqlite" {
		if err := os.MkdirAll(filepath.Join(base, "inproc"), 0o755); err != nil {
			return nil, err
		}
		dsn = filepath.Join(base, "inproc", "hello.db") +
			"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate&_time_format=sqlite"
	} else {
		driver = "postgres"
		if dsn, err = postgresSchema(dbURL, "inproc_hello"); err != nil {
			return nil, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if st.inproc, err = startProc("inproc-"+db, s.self, []string{"serve-inproc", addr, driver, dsn}, env, addr, "/hello/ping"); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, st.inproc)
	if addr, err = freeAddr(); err != nil {
		return nil, err
	}
	if st.micro, err = startProc("micro-"+db, s.self, []string{"serve-gateway", addr, st.inproc.url}, env, addr, "/hello/ping"); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, st.micro)
	if db == "sqlite" && (s.cfg.want("a") || s.cfg.want("b") || s.cfg.want("d")) {
		if err := s.startExtra(st, base, driver, dsn, env); err != nil {
			return nil, err
		}
	}
	for _, p := range append([]*proc{st.core, st.inproc}, st.seed...) {
		if err := seedItems(p.url, s.cfg.items); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// postgresSchema creates schema on the database of dbURL and returns a URL
// whose search_path selects it, as the core does for a module.
func postgresSchema(dbURL, schema string) (string, error) {
	db, err := gorm.Open(postgres.Open(dbURL), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return "", err
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := db.Exec("CREATE SCHEMA IF NOT EXISTS ?", clause.Table{Name: schema}).Error; err != nil {
		return "", err
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c search_path="+schema))
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String(), nil
}

func (s *suite) add(f figure) { s.res.Figures = append(s.res.Figures, f) }

// compare measures every contender cfg.rounds times, rotating the order
// every round so that none always runs first, and returns each one's values.
func (s *suite) compare(cs []contender, measure func(c contender) (float64, error)) (map[string][]float64, error) {
	out := map[string][]float64{}
	for r := range s.cfg.rounds {
		for i := range cs {
			c := cs[(i+r)%len(cs)]
			v, err := measure(c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.key, err)
			}
			out[c.key] = append(out[c.key], v)
		}
	}
	return out, nil
}

func (s *suite) throughputOf(id, what string, cs []contender, paths []string) (figure, error) {
	rounds, err := s.compare(cs, func(c contender) (float64, error) {
		return closedLoop(c.base, paths, s.cfg.conns, s.cfg.warmup, s.cfg.measure)
	})
	if err != nil {
		return figure{}, err
	}
	return medians(figure{ID: id, What: what + ", " + strconv.Itoa(s.cfg.conns) + " conns", Unit: "req/s"}, rounds), nil
}

func medians(f figure, rounds map[string][]float64) figure {
	f.Rounds = rounds
	if v, ok := rounds["chacc"]; ok {
		f.Chacc = ptr(median(v))
	}
	if v, ok := rounds["inproc"]; ok {
		f.InProc = ptr(median(v))
	}
	if v, ok := rounds["micro"]; ok {
		f.Micro = ptr(median(v))
	}
	for _, x := range extraContenders {
		if v, ok := rounds[x.key]; ok {
			if f.Others == nil {
				f.Others = map[string]float64{}
			}
			f.Others[x.key] = median(v)
		}
	}
	return f
}

// addBaselines adds the rows that put a throughput figure's ratio in
// context, when their contenders ran: the floor (what one bare round trip
// per request leaves of in-process throughput, against the same target) and
// chacc against the in-process server on chacc's garbage collection target.
func (s *suite) addBaselines(f figure, what string) {
	if hop, ok := f.Others["hop"]; ok && f.InProc != nil {
		s.add(figure{ID: f.ID + "⌊", What: what + ": floor ÷ in-process", Unit: "×",
			Ratio: ratio(&hop, f.InProc), RatioOf: "floor ÷ in-process", Target: f.Target})
	}
	if gc, ok := f.Others["inprocgogc"]; ok {
		s.add(figure{ID: f.ID + "gc", What: what + ": chacc ÷ in-process with GOGC=400", Unit: "×",
			Ratio: ratio(f.Chacc, &gc), RatioOf: "chacc ÷ in-process (GOGC=400)"})
	}
}

func ratio(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return ptr(*a / *b)
}

func diff(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	return ptr(*a - *b)
}

// latency is (d): p50 and p99 at a constant moderate rate.
func (s *suite) latency(st *stack, paths []string) error {
	p99 := map[string][]float64{}
	p50, err := s.compare(append(st.contenders(), st.extraFor("d")...), func(c contender) (float64, error) {
		l, err := openLoop(c.base, paths, s.cfg.rate, s.cfg.openWarmup, s.cfg.openMeasure)
		p99[c.key] = append(p99[c.key], l.P99)
		return l.P50, err
	})
	if err != nil {
		return err
	}
	at := fmt.Sprintf("GET /hello/ping p%%s at %d req/s", s.cfg.rate)
	f := medians(figure{ID: "d", What: fmt.Sprintf(at, "50"), Unit: "ms"}, p50)
	f.compared(diff, "chacc − in-process (added ms)")
	f.Target = "≤ 0.10"
	f.Met = ptr(*f.Ratio <= 0.10)
	s.add(f)
	f = medians(figure{ID: "d", What: fmt.Sprintf(at, "99"), Unit: "ms"}, p99)
	f.Ratio, f.RatioOf = diff(f.Chacc, f.InProc), "chacc − in-process (added ms)"
	s.add(f)
	return nil
}

// echo is (h): 1 MiB through the streaming echo, one request at a time.
func (s *suite) echo(st *stack) error {
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	rounds, err := s.compare(st.contenders(), func(c contender) (float64, error) {
		if _, err := postTime(client, c.base+"/hello/echo", body, 2); err != nil { // warm
			return 0, err
		}
		return postTime(client, c.base+"/hello/echo", body, s.cfg.echoPerRound)
	})
	if err != nil {
		return err
	}
	f := medians(figure{ID: "h", What: "1 MiB POST /hello/echo, one at a time", Unit: "ms"}, rounds)
	f.compared(ratio, "chacc ÷ in-process (time)")
	f.Target = "≤ 2.00"
	f.Met = ptr(*f.Ratio <= 2)
	s.add(f)
	return nil
}

// sseIntervalMS is the time between two events of (i).
const sseIntervalMS = 2

// sse is (i): time to the first event, and the latency of every event.
func (s *suite) sse(st *stack) error {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	per := map[string][]float64{}
	first, err := s.compare(st.contenders(), func(c contender) (float64, error) {
		f, p, err := sseTimes(client, c.base, s.cfg.sseEvents, sseIntervalMS, s.cfg.ssePerRound)
		per[c.key] = append(per[c.key], p*1000)
		return f, err
	})
	if err != nil {
		return err
	}
	f := medians(figure{ID: "i", What: "SSE: time to first event", Unit: "ms"}, first)
	f.Ratio, f.RatioOf = diff(f.Chacc, f.InProc), "chacc − in-process (added ms)"
	s.add(f)
	f = medians(figure{ID: "i", What: fmt.Sprintf("SSE: latency of an event (%d events, %d ms apart)", s.cfg.sseEvents, sseIntervalMS), Unit: "µs"}, per)
	f.Ratio, f.RatioOf = diff(f.Chacc, f.InProc), "chacc − in-process (added µs)"
	s.add(f)
	return nil
}

// rss is (g): resident memory of the core and of the hello module.
func (s *suite) rss(st *stack, when string) error {
	if when == "idle" {
		// A fresh module after one request, left alone for a moment.
		if err := getOK(st.core.url + "/hello/ping"); err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
	}
	pid, err := modulePID(st.core.url)
	if err != nil {
		return err
	}
	mod, err := rssBytes(pid)
	if err != nil {
		return err
	}
	core, err := rssBytes(st.core.pid())
	if err != nil {
		return err
	}
	mb := func(b int64) *float64 { return ptr(float64(b) / (1 << 20)) }
	if when == "idle" {
		f := figure{ID: "g", What: "RSS of one idle module (fresh, after one request)", Unit: "MiB", Chacc: mb(mod),
			Ratio: mb(mod), RatioOf: "module RSS (MiB)", Target: "≤ 20", Met: ptr(float64(mod) <= 20<<20)}
		if anon, file, err := rssParts(pid); err == nil {
			f.Note = fmt.Sprintf("of which anonymous (the module's own memory) %.1f MiB, file-backed (its mapped executable, shared with the page cache) %.1f MiB",
				float64(anon)/(1<<20), float64(file)/(1<<20))
		}
		s.add(f)
		return nil
	}
	inproc, err := rssBytes(st.inproc.pid())
	if err != nil {
		return err
	}
	s.add(figure{ID: "g", What: "RSS of the core, " + when, Unit: "MiB", Chacc: mb(core), InProc: mb(inproc),
		Note: "in-process column: the in-process server, which serves everything itself."})
	s.add(figure{ID: "g", What: "RSS of the module, " + when, Unit: "MiB", Chacc: mb(mod)})
	return nil
}

// killRecovery is (f): kill -9 of the module until the route answers 200.
func (s *suite) killRecovery(st *stack) error {
	var times []float64
	for range s.cfg.lifecycleRuns {
		pid, err := modulePID(st.core.url)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return err
		}
		if err := untilOK(st.core.url+"/hello/ping", 10*time.Second); err != nil {
			return fmt.Errorf("after kill -9: %w\n%s", err, st.core.log.tail(20))
		}
		times = append(times, ms(time.Since(t0)))
		if now, _ := modulePID(st.core.url); now == pid {
			return errors.New("the module answered from the killed pid")
		}
		time.Sleep(200 * time.Millisecond)
	}
	m := median(times)
	s.add(figure{ID: "f", What: fmt.Sprintf("kill -9 of the module → first 200, median of %d", len(times)), Unit: "ms",
		Chacc: ptr(m), Rounds: map[string][]float64{"chacc": times}, Ratio: ptr(m), RatioOf: "median (ms)",
		Target: "≤ 500", Met: ptr(m <= 500)})
	return nil
}

// installTime is (e): uninstall, then upload the archive and wait for the
// first 200 on its route.
func (s *suite) installTime(st *stack) error {
	var times []float64
	// The request is prepared before the clock starts: the figure is the
	// server's, from the first byte sent.
	contentType, body := multipartBody(s.archive, "hello.chacc")
	for range s.cfg.lifecycleRuns {
		if err := uninstall(st.core.url); err != nil {
			return err
		}
		t0 := time.Now()
		if status, answer, err := post(st.core.url+"/modules/", contentType, body); err != nil || status != http.StatusCreated {
			return fmt.Errorf("install: %d %s %v", status, answer, err)
		}
		if err := untilOK(st.core.url+"/hello/ping", 10*time.Second); err != nil {
			return err
		}
		times = append(times, ms(time.Since(t0)))
	}
	m := median(times)
	s.add(figure{ID: "e", What: fmt.Sprintf("upload → first 200 (%.1f MiB executable, %.1f MiB archive), median of %d",
		s.res.Settings.ExecutableMB, s.res.Settings.ArchiveMB, len(times)), Unit: "ms",
		Chacc: ptr(m), Rounds: map[string][]float64{"chacc": times}, Ratio: ptr(m), RatioOf: "median (ms)",
		Target: "≤ 150", Met: ptr(m <= 150)})
	return nil
}

// untilOK polls url until it answers 200.
func untilOK(target string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := getOK(target)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Microsecond)
	}
}

func getOK(target string) error {
	resp, err := http.Get(target)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", target, resp.StatusCode)
	}
	return nil
}

// repoRoot finds the directory holding go.mod, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run bench from inside the repository")
		}
		dir = parent
	}
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		m.MemMB = kb >> 10
	}
	return m
}

// authCost is figure (j): what authentication costs a request. One core runs
// hello and the auth module; GET /hello/whoami (MinRole viewer) with a JWT,
// which the core verifies and checks before forwarding, is measured against
// GET /hello/ping with no credential, interleaved.
func (s *suite) authCost() error {
	const email, password = "bench@example.com", "Bench!passw0rd"
	core, err := startCore("core-auth", s.art.chacc, filepath.Join(s.dir, "auth"), "",
		"AUTH_ADMIN_EMAIL="+email, "AUTH_ADMIN_PASSWORD="+password, "AUTH_ACCESS_TOKEN_TTL=60m")
	if err != nil {
		return err
	}
	s.procs = append(s.procs, core)
	if err := install(core.url, s.archive); err != nil {
		return err
	}
	authArchive, err := os.ReadFile(s.art.auth)
	if err != nil {
		return err
	}
	if status, body, err := upload(core.url, authArchive, "auth.chacc"); err != nil || status != http.StatusCreated {
		return fmt.Errorf("install auth: %d %s %v", status, body, err)
	}
	resp, err := http.Post(core.url+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
	if err != nil {
		return err
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil || login.AccessToken == "" {
		return fmt.Errorf("login: %d %v", resp.StatusCode, err)
	}
	header := "Authorization: Bearer " + login.AccessToken + "\r\n"
	cs := []contender{{key: "whoami", base: core.url}, {key: "ping", base: core.url}}
	rounds, err := s.compare(cs, func(c contender) (float64, error) {
		if c.key == "whoami" {
			return closedLoopWith(c.base, []string{"/hello/whoami"}, header, s.cfg.conns, s.cfg.warmup, s.cfg.measure)
		}
		return closedLoop(c.base, []string{"/hello/ping"}, s.cfg.conns, s.cfg.warmup, s.cfg.measure)
	})
	if err != nil {
		return err
	}
	who, ping := ptr(median(rounds["whoami"])), ptr(median(rounds["ping"]))
	s.add(figure{ID: "j", What: "GET /hello/whoami with a JWT, " + strconv.Itoa(s.cfg.conns) + " conns", Unit: "req/s",
		Chacc: who, Rounds: rounds, Ratio: ratio(who, ping), RatioOf: "whoami+JWT ÷ ping",
		Note: "GET /hello/ping without a credential on the same core: " + num(*ping) + " req/s"})
	return nil
}

// startExtra starts the extra contenders of (a) and (d): a core for each
// bridge but the default one and one on Go's default GOMAXPROCS, each with
// hello installed, the in-process server on one CPU, and the floor
// (serve-hop and its serve-pong).
func (s *suite) startExtra(st *stack, base, driver, dsn string, env []string) error {
	for _, x := range []struct {
		key string
		env []string
	}{
		{"conns", []string{"CHACC_BRIDGE=conns"}},
		{"grpc", []string{"CHACC_BRIDGE=grpc"}},
		{"allcpus", []string{"CHACC_GOMAXPROCS=0", "CHACC_MODULE_GOMAXPROCS=0"}},
	} {
		p, err := startCore("core-"+x.key, s.art.chacc, filepath.Join(base, "core-"+x.key), "", x.env...)
		if err != nil {
			return err
		}
		s.procs = append(s.procs, p)
		if err := install(p.url, s.archive); err != nil {
			return fmt.Errorf("%w\n%s", err, p.log.tail(30))
		}
		st.extra = append(st.extra, contender{x.key, p.url})
	}
	// The in-process server with chacc's defaults: half the CPUs, and
	// chacc's GOGC (with Go's default GOMAXPROCS).
	half := append(env[:len(env):len(env)], "GOMAXPROCS="+strconv.Itoa(coreconfig.HalfCPUs()))
	gc := append(env[:len(env):len(env)], "GOGC="+strconv.Itoa(coreconfig.DefaultGOGC))
	for _, x := range []struct {
		key string
		env []string
	}{{"inprochalf", half}, {"inprocgogc", gc}} {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		xDSN := strings.Replace(dsn, "hello.db", x.key+".db", 1)
		p, err := startProc(x.key, s.self, []string{"serve-inproc", addr, driver, xDSN}, x.env, addr, "/hello/ping")
		if err != nil {
			return err
		}
		s.procs = append(s.procs, p)
		st.extra = append(st.extra, contender{x.key, p.url})
		st.seed = append(st.seed, p)
	}
	env = half // the floor's two processes, as chacc's
	sock := filepath.Join(base, "pong.sock")
	pong, err := startPong(s.self, sock, env)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, pong)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	hopDSN := strings.Replace(dsn, "hello.db", "hop.db", 1)
	hop, err := startProc("hop", s.self, []string{"serve-hop", addr, driver, hopDSN, sock}, env, addr, "/hello/ping")
	if err != nil {
		return err
	}
	s.procs = append(s.procs, hop)
	st.extra = append(st.extra, contender{"hop", hop.url})
	st.seed = append(st.seed, hop)
	return nil
}
