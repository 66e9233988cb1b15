package modules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/instance"
	"github.com/chacc/chacc/core/store"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// Start installs the bootstrap archives that are missing or newer than what
// is installed, then starts every enabled module in dependency order. A module
// that fails to start is marked failed; the core keeps serving.
func (m *Manager) Start(ctx context.Context, bootstrap []string) error {
	m.removeStaging()
	for _, path := range bootstrap {
		m.bootstrap(ctx, path)
	}
	// Lifecycle calls that arrive while the modules start wait for them.
	m.opMu.Lock()
	defer m.opMu.Unlock()
	recs, err := m.records(ctx)
	if err != nil {
		return err
	}
	m.removeUnrecorded(recs)
	var enabled []store.Module
	for _, rec := range recs {
		mod := m.getOrCreate(rec.Name)
		mod.mu.Lock()
		mod.setRecord(rec, manifestOf(rec))
		if rec.Enabled {
			prefixes := mod.manifest.Prefixes()
			mod.mounted.Store(&prefixes) // 503 until it is up
		}
		mod.mu.Unlock()
		if rec.Enabled && mod.inst.Load() == nil {
			enabled = append(enabled, rec)
		}
	}
	m.pending.Add(1)
	go func() {
		defer m.pending.Done()
		m.backfillArchives(recs)
	}()
	m.loaded.Store(true) // the authenticator, if any, is known from here on
	m.rebuildRoutes()
	close(m.loadedCh)
	for _, wave := range startWaves(enabled) {
		var wg sync.WaitGroup
		for _, rec := range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.startRecorded(ctx, rec)
			}()
		}
		wg.Wait()
	}
	return nil
}

func (m *Manager) startRecorded(ctx context.Context, rec store.Module) {
	mod := m.getOrCreate(rec.Name)
	man := manifestOf(rec)
	recs, err := m.records(ctx)
	if err == nil {
		err = checkDependencies(man, recs)
	}
	if err == nil {
		err = m.ensureExtracted(ctx, rec)
	}
	var inst *instance.Instance
	if err == nil {
		mod.mu.Lock()
		mod.state = core.StateStarting
		mod.mu.Unlock()
		inst, err = m.startInstance(ctx, mod, rec, man, m.versionDir(rec.Name, rec.Version), false)
	}
	mod.mu.Lock()
	defer mod.mu.Unlock()
	if err != nil {
		mod.state, mod.lastError = core.StateFailed, err.Error()
		m.log.Error("module failed to start", "module", rec.Name, "error", err)
		return
	}
	mod.gen++
	prev := m.mount(mod, inst)
	m.log.Info("module started", "module", rec.Name, "version", rec.Version, "pid", inst.PID())
	if prev != nil {
		go m.stop(prev)
	}
}

func (m *Manager) bootstrap(ctx context.Context, pattern string) {
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		m.log.Error("bootstrap archive not found", "path", pattern)
		return
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			m.log.Error("bootstrap archive unreadable", "path", path, "error", err)
			continue
		}
		goos, goarch := platform()
		arch, err := archive.Read(bytes.NewReader(data), int64(len(data)), m.cfg.Limits, goos, goarch)
		if err != nil {
			m.log.Error("bootstrap archive invalid", "path", path, "error", err)
			continue
		}
		var rec store.Module
		err = m.db.WithContext(ctx).Where("name = ?", arch.Manifest.Name).Take(&rec).Error
		if err == nil && !semver.MustParse(arch.Manifest.Version).GreaterThan(semver.MustParse(rec.Version)) {
			continue // installed, same or newer
		}
		// Install starts the module; on a fresh database that is the start.
		up, err := m.Receive(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			m.log.Error("bootstrap archive could not be staged", "path", path, "error", err)
			continue
		}
		res, err := m.Install(ctx, Actor{Name: "bootstrap"}, filepath.Base(path), up, false)
		if err != nil {
			m.log.Error("bootstrap install failed", "path", path, "error", err)
			continue
		}
		m.log.Info("bootstrap installed module", "module", res.Status.Name, "version", res.Status.Version)
	}
}

// Status returns one module as the operator sees it.
func (m *Manager) Status(ctx context.Context, name string) (*core.ModuleStatus, error) {
	rec, mod, err := m.record(ctx, name)
	if err != nil {
		return nil, err
	}
	return m.status(rec, mod), nil
}

// List returns every installed module, by name.
func (m *Manager) List(ctx context.Context) ([]*core.ModuleStatus, error) {
	recs, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*core.ModuleStatus, 0, len(recs))
	for _, rec := range recs {
		out = append(out, m.status(rec, m.getOrCreate(rec.Name)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Manager) status(rec store.Module, mod *module) *core.ModuleStatus {
	st := &core.ModuleStatus{
		Manifest: manifestOf(rec), IsEnabled: rec.Enabled,
		ArchiveSHA: rec.ArchiveSHA256, ExecSHA: rec.ExecutableSHA256,
		InstalledAt: rec.InstalledAt, UpdatedAt: rec.UpdatedAt,
		Subscribed: subscriptions(rec), Routes: []core.Route{}, Prefixes: []string{},
		Signature: core.Signature{Signed: rec.SignedBy != "", KeyID: rec.SignatureKeyID, Trusted: rec.SignatureTrusted},
	}
	mod.mu.Lock()
	st.State, st.Restarts, st.LastError = mod.state, mod.restarts, mod.lastError
	mod.mu.Unlock()
	if !rec.Enabled && st.State == core.StateRunning {
		st.State = core.StateStopped
	}
	st.StderrTail = mod.stderr.last(20)
	if inst := mod.inst.Load(); inst != nil {
		st.PID, st.StartedAt = inst.PID(), inst.StartedAt()
		for _, r := range inst.Describe().GetRoutes() {
			st.Routes = append(st.Routes, routeView(r))
		}
	}
	if rec.Enabled {
		st.Prefixes = st.Manifest.Prefixes()
	}
	return st
}

func routeView(r *modulev1.Route) core.Route {
	v := core.Route{Method: r.GetMethod(), Path: r.GetPath(), MinRole: r.GetMinRole(), Scopes: r.GetScopes(), MaxBodyBytes: r.GetMaxBodyBytes(), Summary: r.GetSummary()}
	if rl := r.GetRateLimit(); rl != nil && rl.GetRequests() > 0 {
		v.RateLimit = fmt.Sprintf("%d/%ds", rl.GetRequests(), rl.GetPeriodSeconds())
	}
	return v
}

// Ready reports, per enabled module, "ok" or why it is not serving.
func (m *Manager) Ready(ctx context.Context) (map[string]string, error) {
	recs, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, rec := range recs {
		if !rec.Enabled {
			continue
		}
		mod := m.getOrCreate(rec.Name)
		inst := mod.inst.Load()
		if inst == nil {
			mod.mu.Lock()
			out[rec.Name] = string(mod.state)
			if mod.lastError != "" {
				out[rec.Name] += ": " + mod.lastError
			}
			mod.mu.Unlock()
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := inst.Health(hctx); err != nil {
			out[rec.Name] = err.Error()
		} else {
			out[rec.Name] = "ok"
		}
		cancel()
	}
	return out, nil
}

// Deliver hands an event to a subscriber's running instance (the bus's
// DeliverFunc).
func (m *Manager) Deliver(ctx context.Context, subscriber string, ev *modulev1.Event) error {
	mod := m.get(subscriber)
	if mod == nil {
		return errors.New("module not loaded")
	}
	inst := mod.inst.Load()
	if inst == nil {
		return fmt.Errorf("module %s is not running", subscriber)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return inst.HandleEvent(ctx, ev)
}

// Close stops every module, draining in-flight requests first, once the
// archives of recent installs are stored.
func (m *Manager) Close(ctx context.Context) {
	select {
	case <-m.closing:
	default:
		close(m.closing)
	}
	m.pending.Wait()
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.RLock()
	mods := make([]*module, 0, len(m.mods))
	for _, mod := range m.mods {
		mods = append(mods, mod)
	}
	m.mu.RUnlock()
	var wg sync.WaitGroup
	for _, mod := range mods {
		mod.mu.Lock()
		mod.gen++
		old := mod.inst.Swap(nil)
		mod.mu.Unlock()
		if old != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				old.Stop(ctx)
			}()
		}
	}
	wg.Wait()
}
