// Package modules keeps the running modules in line with the desired state in
// the database: install and upgrade (blue/green), enable, disable, uninstall,
// start-up in dependency order, a reconciler that follows changes made by
// other core instances, and a supervisor that restarts crashed modules with
// backoff. It also owns the routing table the HTTP layer uses to find the
// module for a path.
package modules

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/events"
	"github.com/chacc/chacc/core/instance"
	"github.com/chacc/chacc/core/logging"
	"github.com/chacc/chacc/core/store"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// Config is what the manager needs to know.
type Config struct {
	InstalledDir, LoadedDir, DataDir string
	Mode                             string
	// CoreVersion is checked against a manifest's required_chacc_version.
	CoreVersion  string
	Limits       archive.Limits
	StartTimeout time.Duration
	DrainTimeout time.Duration
	// Bridge is instance.Config.Bridge.
	Bridge string
	// GoMaxProcs, when positive, is every module process's GOMAXPROCS.
	GoMaxProcs int
	// GOGC, when positive, is every module process's GOGC.
	GOGC              int
	RestartMax        int
	RestartWindow     time.Duration
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// Environ is the core's environment, from which each module receives the
	// variables named <NAME>_*. Default: os.Environ().
	Environ []string
	// Trust is the signature policy every install is checked against.
	// Default: signatures optional, no key trusted.
	Trust archive.Trust
}

// Actor is who asked for a lifecycle change, for the audit log.
type Actor struct {
	Name, ClientIP, RequestID string
}

// Manager runs the modules.
type Manager struct {
	cfg Config
	db  *store.DB
	bus *events.Bus
	log *slog.Logger

	opMu sync.Mutex // serializes lifecycle operations
	// pending counts archives being stored after their install
	// (archives.go); closing stops their retries.
	pending  sync.WaitGroup
	closing  chan struct{}
	mu       sync.RWMutex
	mods     map[string]*module
	routes   atomic.Pointer[routeTable]
	routesMu sync.Mutex

	// loaded is set once Start has read the desired state; until then the
	// authenticator (authn) is unknown.
	loaded        atomic.Bool
	loadedCh      chan struct{} // closed when loaded is set
	authn         atomic.Pointer[authnState]
	invalidate    func(ctx context.Context, families, subjects, apiKeyIDs []string) error
	authorizeCall func(p *modulev1.Principal, route *modulev1.Route) error
	calls         sync.Map // call token → callEntry
}

// module is the actual state of one installed module.
type module struct {
	name string

	mu        sync.Mutex
	rec       store.Module
	manifest  sdk.Manifest
	state     core.State
	restarts  int
	crashes   []time.Time
	lastError string
	gen       int // bumped by every lifecycle change; a stale supervisor gives up

	inst   atomic.Pointer[instance.Instance]
	routes atomic.Pointer[declaredRoutes]
	// mounted holds the prefixes the module answers on while it is enabled
	// (served, or 503 while down); nil when it is disabled (404).
	mounted atomic.Pointer[[]string]
	stderr  *tail
	// authenticator is whether the manifest declares the "authenticator"
	// capability (set with the manifest, read without the lock).
	authenticator atomic.Bool
}

// New returns a manager. Call SetBus before Start.
func New(cfg Config, db *store.DB, log *slog.Logger) *Manager {
	if cfg.Environ == nil {
		cfg.Environ = os.Environ()
	}
	m := &Manager{cfg: cfg, db: db, log: log, mods: map[string]*module{}, loadedCh: make(chan struct{}), closing: make(chan struct{})}
	m.routes.Store(&routeTable{})
	return m
}

// SetBus connects the event bus (which in turn delivers through Deliver).
func (m *Manager) SetBus(b *events.Bus) { m.bus = b }

func (m *Manager) get(name string) *module {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mods[name]
}

func (m *Manager) getOrCreate(name string) *module {
	m.mu.Lock()
	defer m.mu.Unlock()
	mod := m.mods[name]
	if mod == nil {
		mod = &module{name: name, state: core.StateStopped, stderr: newTail(50)}
		m.mods[name] = mod
	}
	return mod
}

// settingsFor returns the variables of the core's environment that belong to
// a module: those named <NAME>_* (name upper-cased, '-' as '_').
func (m *Manager) settingsFor(name string) map[string]string {
	prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
	out := map[string]string{}
	for _, kv := range m.cfg.Environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// baseEnv are the variables of the core's environment every module process
// gets; nothing else leaks (DATABASE_URL, other modules' secrets).
var baseEnv = []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR"}

func (m *Manager) envFor(name string, settings map[string]string) []string {
	var env []string
	for _, kv := range m.cfg.Environ {
		k, _, _ := strings.Cut(kv, "=")
		for _, b := range baseEnv {
			if k == b {
				env = append(env, kv)
			}
		}
	}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	if m.cfg.GoMaxProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(m.cfg.GoMaxProcs))
	}
	if m.cfg.GOGC > 0 {
		env = append(env, "GOGC="+strconv.Itoa(m.cfg.GOGC))
	}
	return append(env, "CHACC_MODE="+m.cfg.Mode, "CHACC_MODULE_NAME="+name)
}

func (m *Manager) versionDir(name, version string) string {
	return filepath.Join(m.cfg.LoadedDir, name, version)
}

// startInstance starts a process for rec from dir (the extracted archive).
// justExtracted says this call's install extracted dir a moment ago, hashing
// the executable as it wrote it (instance.Config.JustWritten).
func (m *Manager) startInstance(ctx context.Context, mod *module, rec store.Module, man sdk.Manifest, dir string, justExtracted bool) (*instance.Instance, error) {
	mdb, err := m.db.ModuleDatabase(ctx, rec.Name)
	if err != nil {
		return nil, fmt.Errorf("module database: %w", err)
	}
	dataDir := filepath.Join(m.cfg.DataDir, "modules", rec.Name)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	absData, _ := filepath.Abs(dataDir)
	exe, err := filepath.Abs(filepath.Join(dir, filepath.FromSlash(rec.Executable)))
	if err != nil {
		return nil, err
	}
	settings := m.settingsFor(rec.Name)
	logLine := logging.LineLogger(m.log, "module", rec.Name, "stream", "stderr")
	inst, err := instance.Start(ctx, instance.Config{
		Name: rec.Name, Version: rec.Version, Dir: dir, Executable: exe,
		ExecutableSHA256: rec.ExecutableSHA256, JustWritten: justExtracted,
		Env: m.envFor(rec.Name, settings),
		Configure: &modulev1.ConfigureRequest{
			ManifestJson: []byte(rec.ManifestJSON), Settings: settings, Mode: m.cfg.Mode, DataDir: absData,
			Database: &modulev1.Database{Driver: mdb.Driver, Dsn: mdb.DSN, Schema: mdb.Schema},
		},
		Host:         &hostServer{m: m, name: rec.Name, manifest: man},
		StartTimeout: m.cfg.StartTimeout, Bridge: m.cfg.Bridge,
		Stderr: func(line string) {
			mod.stderr.add(line)
			logLine(line)
		},
		Logger: m.log.With("module", rec.Name),
	})
	if err != nil {
		if last := mod.stderr.last(5); len(last) > 0 {
			err = fmt.Errorf("%w (stderr: %s)", err, strings.Join(last, " | "))
		}
		return nil, err
	}
	if err := checkRoutes(inst.Describe().GetRoutes(), man.Prefixes()); err != nil {
		inst.Kill()
		return nil, err
	}
	return inst, nil
}

// mount makes inst the serving instance of mod and returns the one it
// replaced. Callers hold opMu or are the supervisor with a current gen.
func (m *Manager) mount(mod *module, inst *instance.Instance) *instance.Instance {
	mod.routes.Store(compileRoutes(inst.Describe().GetRoutes()))
	old := mod.inst.Swap(inst)
	prefixes := mod.manifest.Prefixes()
	mod.mounted.Store(&prefixes)
	mod.state = core.StateRunning
	mod.lastError = ""
	m.rebuildRoutes()
	go m.supervise(mod, inst, mod.gen)
	if m.bus != nil {
		if err := m.bus.Subscribe(context.Background(), mod.name, subscriptions(mod.rec)); err != nil {
			m.log.Error("event subscription failed", "module", mod.name, "error", err)
		}
		m.bus.Wake(mod.name)
	}
	return old
}

// unmount takes mod off its prefixes and returns the instance that served.
func (m *Manager) unmount(mod *module) *instance.Instance {
	old := mod.inst.Swap(nil)
	mod.mounted.Store(nil)
	mod.state = core.StateStopped
	m.rebuildRoutes()
	return old
}

// stop drains and stops an instance that no longer serves.
func (m *Manager) stop(inst *instance.Instance) {
	if inst == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DrainTimeout)
	defer cancel()
	inst.Stop(ctx)
}

// supervise waits for inst to exit. An exit nobody asked for is a crash:
// the module is restarted with exponential backoff (the first restart at
// once) until RestartMax crashes fall within RestartWindow, when it is marked
// crashed and left for an operator.
func (m *Manager) supervise(mod *module, inst *instance.Instance, gen int) {
	<-inst.Exited()
	inst.Kill() // release the connection, broker and pipes of the dead process
	backoff := time.Duration(0)
	for {
		mod.mu.Lock()
		if mod.gen != gen || (mod.inst.Load() != inst && mod.inst.Load() != nil) {
			mod.mu.Unlock()
			return // replaced or stopped on purpose
		}
		if mod.inst.Load() == inst {
			mod.inst.Store(nil) // the prefix answers 503 from now on
			if last := mod.stderr.last(1); len(last) > 0 {
				mod.lastError = "process exited unexpectedly: " + last[0]
			} else {
				mod.lastError = "process exited unexpectedly"
			}
			m.log.Warn("module crashed", "module", mod.name, "pid", inst.PID(), "error", mod.lastError)
		}
		now := time.Now()
		mod.crashes = append(mod.crashes, now)
		recent := mod.crashes[:0]
		for _, t := range mod.crashes {
			if now.Sub(t) <= m.cfg.RestartWindow {
				recent = append(recent, t)
			}
		}
		mod.crashes = recent
		if len(recent) >= m.cfg.RestartMax {
			mod.state = core.StateCrashed
			mod.lastError = fmt.Sprintf("%s; crashed %d times within %s, not restarting until enabled again", mod.lastError, len(recent), m.cfg.RestartWindow)
			m.log.Error("module crash loop; giving up", "module", mod.name, "crashes", len(recent))
			mod.mu.Unlock()
			return
		}
		mod.state = core.StateStarting
		rec, man := mod.rec, mod.manifest
		mod.mu.Unlock()

		time.Sleep(backoff)
		backoff = min(max(backoff*2, m.cfg.RestartBackoffMin), m.cfg.RestartBackoffMax)
		mod.mu.Lock()
		current := mod.gen == gen
		mod.mu.Unlock()
		if !current {
			return // disabled, uninstalled or replaced while we waited
		}

		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StartTimeout)
		next, err := m.startInstance(ctx, mod, rec, man, m.versionDir(rec.Name, rec.Version), false)
		cancel()
		mod.mu.Lock()
		if mod.gen != gen {
			mod.mu.Unlock()
			if next != nil {
				m.stop(next)
			}
			return
		}
		if err != nil {
			mod.lastError = "restart failed: " + err.Error()
			m.log.Error("module restart failed", "module", mod.name, "error", err)
			mod.mu.Unlock()
			continue
		}
		mod.restarts++
		m.mount(mod, next)
		m.log.Info("module restarted", "module", mod.name, "pid", next.PID(), "restarts", mod.restarts)
		mod.mu.Unlock()
		return
	}
}

func subscriptions(rec store.Module) []string {
	var subs []string
	_ = json.Unmarshal([]byte(rec.Subscribes), &subs)
	return subs
}

// unionSorted merges two lists without duplicates.
func unionSorted(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range append(append([]string(nil), a...), b...) {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func platform() (string, string) { return runtime.GOOS, runtime.GOARCH }

// tail keeps the last lines of a module's stderr.
type tail struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > 1000 {
		line = line[:1000] + "…"
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tail) last(n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines[max(0, len(t.lines)-n):]...)
}
