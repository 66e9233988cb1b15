// Package openapi builds the core's GET /openapi.json: one OpenAPI 3
// document holding the core's own routes (core.yaml) and the routes of every
// running module, each module's operations under a tag named after it.
//
// A module's routes come from its fragment (the author's document from
// Describe, else the archive's openapi.json, else the one the SDK generates
// from the declared routes) and from its declared routes, which fill in what
// the fragment leaves out. Merging keeps a module inside its own space:
//
//   - paths outside the module's prefixes are dropped (and logged);
//   - its components are renamed "<module>.<name>" and every $ref rewritten,
//     except those identical (documentation aside) to the core's component
//     of the same name, which are merged into it (the Error schema);
//   - its security schemes are dropped: the core's bearerAuth and apiKeyAuth
//     are the ones it enforces, and an operation whose declared route needs a
//     role or scopes gets both, with x-chacc-min-role and x-chacc-scopes;
//   - operation ids are prefixed "<module>.";
//   - a fragment that makes the document invalid is replaced by the one
//     generated from the declared routes (and logged).
//
// [Service] serves the document, rebuilt whenever the set of running module
// processes changes.
package openapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/wire"
)

//go:embed core.yaml
var coreYAML []byte

// Module is one running module as the document needs it.
type Module struct {
	Name        string
	DisplayName string // Default: Name.
	Description string
	Version     string
	Prefixes    []string
	Routes      []*modulev1.Route
	// Fragment is the module's own OpenAPI 3 document (JSON); empty when it
	// has none.
	Fragment []byte
}

// doc is a JSON document as maps, slices and scalars.
type doc = map[string]any

var (
	coreOnce sync.Once
	coreJSON []byte
	coreErr  error
)

// coreDoc returns a fresh copy of the core's document.
func coreDoc() (doc, error) {
	coreOnce.Do(func() {
		t, err := openapi3.NewLoader().LoadFromData(coreYAML)
		if err != nil {
			coreErr = fmt.Errorf("openapi: core.yaml: %w", err)
			return
		}
		coreJSON, coreErr = json.Marshal(t)
	})
	if coreErr != nil {
		return nil, coreErr
	}
	var d doc
	err := json.Unmarshal(coreJSON, &d)
	return d, err
}

// Build returns the document for the core at version with mods (JSON). A
// module whose fragment cannot be used is documented from its declared
// routes alone; log says why.
func Build(version string, mods []Module, log *slog.Logger) ([]byte, error) {
	if log == nil {
		log = slog.Default()
	}
	d, err := coreDoc()
	if err != nil {
		return nil, err
	}
	obj(d, "info")["version"] = version
	tags := tagNames(mods)
	for i, m := range mods {
		part, err := modulePart(d, m, tags[i], log)
		if err != nil {
			log.Error("openapi: module left out of the document", "module", m.Name, "error", err)
			continue
		}
		part.addTo(d)
		tag := doc{"name": tags[i], "x-chacc-module": m.Name}
		desc := m.Description
		if desc != "" && !strings.HasSuffix(desc, ".") {
			desc += "."
		}
		tag["description"] = strings.TrimSpace(fmt.Sprintf("%s Module %s %s, under %s.", desc, m.Name, m.Version, strings.Join(m.Prefixes, ", ")))
		d["tags"] = append(d["tags"].([]any), tag)
	}
	return json.Marshal(d)
}

// tagNames names each module's tag: its display name, or "<display name>
// (<name>)" when that is taken by the core or by another module.
func tagNames(mods []Module) []string {
	count := map[string]int{"Core": 1, "Modules": 1}
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.DisplayName
		if names[i] == "" {
			names[i] = m.Name
		}
		count[names[i]]++
	}
	for i, m := range mods {
		if count[names[i]] > 1 {
			names[i] = fmt.Sprintf("%s (%s)", names[i], m.Name)
		}
	}
	return names
}

// part is what one module adds to the document.
type part struct {
	paths      doc            // template → path item
	components map[string]doc // section → name → component
}

func (p part) addTo(d doc) {
	paths := obj(d, "paths")
	for k, v := range p.paths {
		paths[k] = v
	}
	comps := obj(d, "components")
	for section, items := range p.components {
		dst := obj(comps, section)
		for k, v := range items {
			dst[k] = v
		}
	}
}

// modulePart merges m's fragment and declared routes; when the result does
// not validate against the core's document, it falls back to the declared
// routes alone.
func modulePart(core doc, m Module, tag string, log *slog.Logger) (part, error) {
	generated := sdk.OpenAPIFragment(tag, m.Version, sdkRoutes(m.Routes))
	if len(m.Fragment) > 0 {
		p, err := fromFragment(core, m, tag, m.Fragment, log)
		if err == nil {
			var gen part
			if gen, err = fromFragment(core, m, tag, generated, log); err == nil {
				p.fill(gen)
				err = validateWith(core, p)
			}
		}
		if err == nil {
			return p, nil
		}
		log.Warn("openapi: module fragment unusable; documenting its declared routes only", "module", m.Name, "error", err)
	}
	p, err := fromFragment(core, m, tag, generated, log)
	if err != nil {
		return part{}, err
	}
	return p, validateWith(core, p)
}

// fill adds the operations of gen that p lacks (same method, same path up to
// parameter names), with gen's components.
func (p part) fill(gen part) {
	shapes := map[string]string{}
	for k := range p.paths {
		shapes[pathShape(k)] = k
	}
	added := false
	for k, item := range gen.paths {
		key, ok := shapes[pathShape(k)]
		if !ok {
			p.paths[k] = item
			added = true
			continue
		}
		dst := p.paths[key].(doc)
		for method, op := range item.(doc) {
			if !isMethod(method) || dst[method] != nil {
				continue
			}
			if key != k {
				op = renameParams(op.(doc), k, key)
			}
			dst[method] = op
			added = true
		}
	}
	if !added {
		return
	}
	for section, items := range gen.components {
		dst := p.components[section]
		if dst == nil {
			dst = doc{}
			p.components[section] = dst
		}
		for k, v := range items {
			if _, ok := dst[k]; !ok {
				dst[k] = v
			}
		}
	}
}

// validateWith checks that the core's document with p added is valid.
func validateWith(core doc, p part) error {
	d := clone(core)
	p.addTo(d)
	return Validate(d)
}

// Validate checks a document (as maps, or JSON bytes) with kin-openapi.
func Validate(d any) error {
	b, ok := d.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(d); err != nil {
			return err
		}
	}
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(b)
	if err != nil {
		return err
	}
	return t.Validate(context.Background())
}

func sdkRoutes(rs []*modulev1.Route) []sdk.Route {
	out := make([]sdk.Route, 0, len(rs))
	for _, r := range rs {
		sr := sdk.Route{Method: r.GetMethod(), Path: r.GetPath(), MinRole: r.GetMinRole(), Scopes: r.GetScopes(), Summary: r.GetSummary()}
		if rl := r.GetRateLimit(); rl != nil && rl.GetRequests() > 0 {
			sr.RateLimit = &sdk.RateLimit{Requests: int(rl.GetRequests()), Period: secs(rl.GetPeriodSeconds()), Key: rl.GetKey()}
		}
		out = append(out, sr)
	}
	return out
}

// matcher finds the declared route of an operation.
type matcher struct {
	patterns []wire.Pattern
	routes   []*modulev1.Route
}

func newMatcher(rs []*modulev1.Route) matcher {
	m := matcher{routes: rs}
	for _, r := range rs {
		m.patterns = append(m.patterns, wire.CompilePattern(r.GetMethod(), r.GetPath()))
	}
	return m
}

// route returns the declared route that serves method on the path template,
// nil when none does.
func (m matcher) route(method, tmpl string) *modulev1.Route {
	// "\x00" matches a parameter, never a literal.
	i, _ := wire.BestMatch(m.patterns, strings.ToUpper(method), wire.TemplateWith(tmpl, "\x00"))
	if i < 0 {
		return nil
	}
	return m.routes[i]
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func isMethod(k string) bool {
	for _, m := range methods {
		if k == m {
			return true
		}
	}
	return false
}

// pathShape is a template with its parameter names erased.
func pathShape(tmpl string) string { return wire.TemplateWith(tmpl, "{}") }

// renameParams gives op's path parameters the names of template to, in
// order, where it has the names of from.
func renameParams(op doc, from, to string) doc {
	f, t := wire.TemplateParams(from), wire.TemplateParams(to)
	ren := map[string]string{}
	for i := range min(len(f), len(t)) {
		ren[f[i]] = t[i]
	}
	op = clone(op)
	if ps, ok := op["parameters"].([]any); ok {
		for _, p := range ps {
			if pm, ok := p.(doc); ok && pm["in"] == "path" {
				if n, ok := ren[fmt.Sprint(pm["name"])]; ok {
					pm["name"] = n
				}
			}
		}
	}
	return op
}

// obj returns d[key] as an object, creating it when missing.
func obj(d doc, key string) doc {
	if v, ok := d[key].(doc); ok {
		return v
	}
	v := doc{}
	d[key] = v
	return v
}

// clone deep-copies a JSON value.
func clone[T any](v T) T {
	b, _ := json.Marshal(v)
	var out T
	_ = json.Unmarshal(b, &out)
	return out
}

func sortedKeys(m doc) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
