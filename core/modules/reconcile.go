package modules

import (
	"context"
	"os"
	"time"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/store"
)

// RunReconciler calls Reconcile whenever a core on the same Postgres
// announces a lifecycle change (LISTEN/NOTIFY), and every interval in any
// case, until ctx is done. It is how a core follows changes that another core
// made; the changes this core makes itself are already in effect.
func (m *Manager) RunReconciler(ctx context.Context, interval time.Duration) {
	changed := make(chan struct{}, 1)
	if m.db.Driver() == store.DriverPostgres {
		go func() {
			for ctx.Err() == nil {
				err := m.db.ListenModules(ctx, func() {
					select {
					case changed <- struct{}{}:
					default:
					}
				})
				if err != nil {
					m.log.Warn("reconcile: listening for changes failed; polling meanwhile", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		m.Reconcile(ctx)
	}
}

// Reconcile makes this instance's processes match the desired state in the
// database for every module whose record changed since this instance last
// acted on it: started, upgraded (from the archive kept in the database),
// stopped, or removed.
func (m *Manager) Reconcile(ctx context.Context) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	recs, err := m.records(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("reconcile: read desired state", "error", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, rec := range recs {
		seen[rec.Name] = true
		mod := m.getOrCreate(rec.Name)
		mod.mu.Lock()
		known := mod.rec
		mod.mu.Unlock()
		if known.Name == rec.Name && known.Version == rec.Version && known.Enabled == rec.Enabled && known.ArchiveSHA256 == rec.ArchiveSHA256 {
			continue
		}
		if rec.Enabled && (known.Version != rec.Version || known.ArchiveSHA256 != rec.ArchiveSHA256) && !m.archiveReady(ctx, rec) {
			// Installed elsewhere a moment ago: its archive reaches the
			// database just after, with another notification (archives.go).
			continue
		}
		m.log.Info("reconcile: desired state changed elsewhere", "module", rec.Name, "version", rec.Version, "enabled", rec.Enabled)
		m.converge(ctx, mod, known, rec)
	}
	m.mu.RLock()
	var gone []*module
	for name, mod := range m.mods {
		if !seen[name] {
			gone = append(gone, mod)
		}
	}
	m.mu.RUnlock()
	for _, mod := range gone {
		m.log.Info("reconcile: module uninstalled elsewhere", "module", mod.name)
		mod.mu.Lock()
		mod.gen++
		old := m.unmount(mod)
		mod.mu.Unlock()
		m.stop(old)
		m.forget(mod.name)
		if m.bus != nil {
			_ = m.bus.Unsubscribe(ctx, mod.name, false)
		}
		m.removeFiles(mod.name)
	}
}

// converge brings one module from what this instance knew to rec.
func (m *Manager) converge(ctx context.Context, mod *module, known, rec store.Module) {
	man := manifestOf(rec)
	if !rec.Enabled {
		mod.mu.Lock()
		mod.gen++
		mod.setRecord(rec, man)
		old := m.unmount(mod)
		mod.mu.Unlock()
		m.stop(old)
		return
	}
	if known.Name != "" && known.ArchiveSHA256 != rec.ArchiveSHA256 {
		// Another archive under this version (a forced reinstall): extract
		// it afresh. A running process keeps its unlinked files.
		_ = os.RemoveAll(m.versionDir(rec.Name, rec.Version))
	}
	err := m.ensureExtracted(ctx, rec)
	var started bool
	if err == nil {
		var inst = mod.inst.Load()
		if inst != nil && inst.Version() == rec.Version && known.ArchiveSHA256 == rec.ArchiveSHA256 {
			started = true // enabled here already; only the record caught up
		} else if next, serr := m.startInstance(ctx, mod, rec, man, m.versionDir(rec.Name, rec.Version), false); serr != nil {
			err = serr
		} else {
			m.switchTo(mod, rec, man, next)
			started = true
		}
	}
	mod.mu.Lock()
	defer mod.mu.Unlock()
	mod.setRecord(rec, man)
	if !started {
		mod.lastError = err.Error()
		m.log.Error("reconcile: module failed to start", "module", rec.Name, "error", err)
		if mod.inst.Load() != nil {
			return // the version it runs keeps serving
		}
		mod.gen++
		prefixes := man.Prefixes()
		mod.mounted.Store(&prefixes) // enabled: 503 while it cannot run
		mod.state = core.StateFailed
		m.rebuildRoutes()
		return
	}
	if known.Version != "" && known.Version != rec.Version {
		m.removeVersion(rec.Name, known.Version)
	}
}
