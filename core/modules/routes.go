package modules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/instance"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk/wire"
)

// routeTable maps mounted prefixes to modules, longest prefix first. It is
// replaced whole on every change and read without locks.
type routeTable struct {
	entries []routeEntry
}

type routeEntry struct {
	prefix string
	mod    *module
}

// declaredRoutes are a running module's routes with their compiled patterns,
// index for index.
type declaredRoutes struct {
	patterns []wire.Pattern
	routes   []*modulev1.Route
}

// Target is the module serving a request path.
type Target struct {
	Module string
	Prefix string
	// Instance is nil while the module is down (503).
	Instance *instance.Instance
	// Route is the matched declared route, nil when none matched.
	Route      *modulev1.Route
	PathParams map[string]string
	// RetryAfter is a hint in seconds when Instance is nil.
	RetryAfter int
	State      core.State
}

// Lookup finds the module mounted at path; ok is false when none is.
func (m *Manager) Lookup(method, path string) (Target, bool) {
	for _, e := range m.routes.Load().entries {
		if !wire.UnderPrefix(path, e.prefix) {
			continue
		}
		t := Target{Module: e.mod.name, Prefix: e.prefix, Instance: e.mod.inst.Load()}
		if t.Instance == nil {
			e.mod.mu.Lock()
			t.State = e.mod.state
			e.mod.mu.Unlock()
			t.RetryAfter = 1
			if t.State == core.StateCrashed || t.State == core.StateFailed {
				t.RetryAfter = 30
			}
			return t, true
		}
		t.State = core.StateRunning
		if rs := e.mod.routes.Load(); rs != nil {
			if i, params := wire.BestMatch(rs.patterns, method, path); i >= 0 {
				t.Route, t.PathParams = rs.routes[i], params
			}
		}
		return t, true
	}
	return Target{}, false
}

// rebuildRoutes recomputes the table from every mounted module (running or
// not: a down module's prefix answers 503, a disabled one's 404).
func (m *Manager) rebuildRoutes() {
	m.routesMu.Lock() // tables are stored in the order they are built
	defer m.routesMu.Unlock()
	m.mu.RLock()
	var entries []routeEntry
	var mounted []*module
	for _, mod := range m.mods {
		if ps := mod.mounted.Load(); ps != nil {
			mounted = append(mounted, mod)
			for _, p := range *ps {
				entries = append(entries, routeEntry{prefix: p, mod: mod})
			}
		}
	}
	m.mu.RUnlock()
	sort.Slice(entries, func(i, j int) bool { return len(entries[i].prefix) > len(entries[j].prefix) })
	m.routes.Store(&routeTable{entries: entries})
	m.updateAuthn(mounted)
}

func compileRoutes(rs []*modulev1.Route) *declaredRoutes {
	d := &declaredRoutes{routes: rs}
	for _, r := range rs {
		d.patterns = append(d.patterns, wire.CompilePattern(r.GetMethod(), r.GetPath()))
	}
	return d
}

// checkRoutes refuses declared routes outside the module's prefixes.
func checkRoutes(rs []*modulev1.Route, prefixes []string) error {
	for _, r := range rs {
		ok := false
		for _, p := range prefixes {
			if wire.UnderPrefix(r.GetPath(), p) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("declared route %s %s is outside the module's prefixes (%s)", r.GetMethod(), r.GetPath(), strings.Join(prefixes, ", "))
		}
	}
	return nil
}

func prefixesOverlap(a, b string) bool {
	return wire.UnderPrefix(a, b) || wire.UnderPrefix(b, a)
}
