package modules

import (
	"sort"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/instance"
)

// Running is a module that serves requests now, as the OpenAPI document sees
// it.
type Running struct {
	Name, DisplayName, Description, Version string
	// Prefixes are the mounted prefixes, the base first.
	Prefixes []string
	// Dir is the extracted archive the process runs from (it may hold the
	// archive's openapi.json).
	Dir string
	// Instance is the serving process; Describe has its routes and fragment.
	Instance *instance.Instance
}

// Running returns every mounted module with a live process, by name. It
// reads the routing table, so it agrees with what Lookup serves: once a
// lifecycle call has returned, the change is visible here. Two results with
// the same names and Instances describe the same thing.
func (m *Manager) Running() []Running {
	seen := map[*module]bool{}
	var out []Running
	for _, e := range m.routes.Load().entries {
		mod := e.mod
		if seen[mod] {
			continue
		}
		seen[mod] = true
		inst := mod.inst.Load()
		ps := mod.mounted.Load()
		if inst == nil || ps == nil {
			continue
		}
		mod.mu.Lock()
		man := mod.manifest
		mod.mu.Unlock()
		out = append(out, Running{
			Name: mod.name, DisplayName: man.DisplayName, Description: man.Description,
			Version: inst.Version(), Prefixes: append([]string(nil), *ps...),
			Dir: m.versionDir(mod.name, inst.Version()), Instance: inst,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stat is one installed module's process as the metrics see it.
type Stat struct {
	Name     string
	State    core.State
	Restarts int
	// PID is the serving process, 0 when none serves.
	PID int
	// InFlight counts requests and event deliveries being served.
	InFlight int64
}

// Stats returns every module this core knows, by name.
func (m *Manager) Stats() []Stat {
	m.mu.RLock()
	mods := make([]*module, 0, len(m.mods))
	for _, mod := range m.mods {
		mods = append(mods, mod)
	}
	m.mu.RUnlock()
	out := make([]Stat, 0, len(mods))
	for _, mod := range mods {
		mod.mu.Lock()
		st := Stat{Name: mod.name, State: mod.state, Restarts: mod.restarts}
		enabled := mod.rec.Enabled
		mod.mu.Unlock()
		if !enabled && st.State == core.StateRunning {
			st.State = core.StateStopped // as Status reports it
		}
		if inst := mod.inst.Load(); inst != nil {
			st.PID, st.InFlight = inst.PID(), inst.InFlight()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
