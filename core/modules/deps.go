package modules

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/sdk"
)

func manifestOf(rec store.Module) sdk.Manifest {
	var man sdk.Manifest
	_ = json.Unmarshal([]byte(rec.ManifestJSON), &man)
	return man
}

// checkConflicts refuses a manifest whose prefixes overlap another module's,
// or whose name maps to another module's database schema.
func checkConflicts(man sdk.Manifest, recs []store.Module) error {
	schema := func(n string) string { return strings.ReplaceAll(n, "-", "_") }
	for _, rec := range recs {
		if rec.Name == man.Name {
			continue
		}
		if schema(rec.Name) == schema(man.Name) {
			return core.Errorf(core.ECONFLICT, "MODULE_CONFLICT", "Module name '%s' clashes with installed module '%s'.", man.Name, rec.Name)
		}
		other := manifestOf(rec)
		for _, p := range man.Prefixes() {
			for _, q := range other.Prefixes() {
				if prefixesOverlap(p, q) {
					return core.Errorf(core.ECONFLICT, "PREFIX_CONFLICT", "Prefix '%s' is already used by module '%s' ('%s').", p, rec.Name, q)
				}
			}
		}
	}
	return nil
}

// checkDependencies requires every dependency installed, enabled and of a
// version in range; the error names each one that is not.
func checkDependencies(man sdk.Manifest, recs []store.Module) error {
	byName := map[string]store.Module{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	var problems []string
	names := make([]string, 0, len(man.Dependencies))
	for n := range man.Dependencies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, dep := range names {
		rng := man.Dependencies[dep]
		rec, ok := byName[dep]
		c, err := semver.NewConstraint(rng)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("'%s' has an invalid range %q", dep, rng))
		case !ok:
			problems = append(problems, fmt.Sprintf("'%s' (%s) is not installed", dep, rng))
		case !rec.Enabled:
			problems = append(problems, fmt.Sprintf("'%s' (%s) is disabled", dep, rng))
		case !c.Check(semver.MustParse(rec.Version)):
			problems = append(problems, fmt.Sprintf("'%s' is %s, which is not %s", dep, rec.Version, rng))
		}
	}
	if len(problems) > 0 {
		return core.Errorf(core.EUNPROCESSABLE, "DEPENDENCY_UNMET", "Module '%s' has unmet dependencies: %s.", man.Name, strings.Join(problems, "; "))
	}
	return nil
}

// checkDependents refuses a version of name that an enabled module's range
// does not accept.
func checkDependents(name, version string, recs []store.Module) error {
	v := semver.MustParse(version)
	for _, rec := range recs {
		if !rec.Enabled || rec.Name == name {
			continue
		}
		rng, ok := manifestOf(rec).Dependencies[name]
		if !ok {
			continue
		}
		if c, err := semver.NewConstraint(rng); err == nil && !c.Check(v) {
			return core.Errorf(core.ECONFLICT, "DEPENDENT_CONFLICT", "Module '%s' requires '%s' %s; version %s would break it.", rec.Name, name, rng, version)
		}
	}
	return nil
}

// enabledDependents lists the enabled modules that depend on name.
func enabledDependents(name string, recs []store.Module) []string {
	var out []string
	for _, rec := range recs {
		if _, ok := manifestOf(rec).Dependencies[name]; ok && rec.Enabled && rec.Name != name {
			out = append(out, rec.Name)
		}
	}
	return out
}

// startWaves orders modules so that each comes after its dependencies; the
// modules of one wave do not depend on each other and start in parallel.
// Modules in a cycle, or depending on a module outside recs, come last in a
// wave of their own, where their start fails with a clear error.
func startWaves(recs []store.Module) [][]store.Module {
	pending := map[string]store.Module{}
	for _, r := range recs {
		pending[r.Name] = r
	}
	done := map[string]bool{}
	var waves [][]store.Module
	for len(pending) > 0 {
		var wave []store.Module
		for _, r := range pending {
			ready := true
			for dep := range manifestOf(r).Dependencies {
				if _, waiting := pending[dep]; waiting {
					ready = false
				}
			}
			if ready {
				wave = append(wave, r)
			}
		}
		if len(wave) == 0 { // a cycle
			for _, r := range pending {
				wave = append(wave, r)
			}
		}
		sort.Slice(wave, func(i, j int) bool { return wave[i].Name < wave[j].Name })
		for _, r := range wave {
			delete(pending, r.Name)
			done[r.Name] = true
		}
		waves = append(waves, wave)
	}
	return waves
}
