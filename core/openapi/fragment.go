package openapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/chacc/chacc/sdk/wire"
)

// componentSections are the components a fragment may bring; securitySchemes
// are not among them (the core's are the ones it enforces).
var componentSections = []string{"schemas", "responses", "parameters", "examples", "requestBodies", "headers", "links", "callbacks"}

// coreSchemes are the security schemes the core enforces.
var coreSchemes = []string{"bearerAuth", "apiKeyAuth"}

func secs(n uint32) time.Duration { return time.Duration(n) * time.Second }

// fromFragment turns one fragment of m into what it adds to the document:
// paths under m's prefixes, tagged, with security from the declared routes,
// and components renamed into m's namespace (or merged into the core's).
func fromFragment(core doc, m Module, tag string, raw []byte, log *slog.Logger) (part, error) {
	var frag doc
	if err := json.Unmarshal(raw, &frag); err != nil {
		return part{}, fmt.Errorf("fragment is not a JSON object: %w", err)
	}
	if v, _ := frag["openapi"].(string); !strings.HasPrefix(v, "3.0") {
		return part{}, fmt.Errorf("fragment is OpenAPI %q; 3.0.x is supported", v)
	}

	// Components: renamed into the module's namespace, or merged into the
	// core's identical one.
	coreComps, _ := core["components"].(doc)
	rename := map[string]string{} // "#/components/<section>/<name>" → new ref
	comps := map[string]doc{}
	fragComps, _ := frag["components"].(doc)
	for _, section := range componentSections {
		items, _ := fragComps[section].(doc)
		if len(items) == 0 {
			continue
		}
		coreItems, _ := coreComps[section].(doc)
		for _, name := range sortedKeys(items) {
			from := "#/components/" + section + "/" + name
			if c, ok := coreItems[name]; ok && refsToCore(items[name], rename) && sameComponent(c, items[name]) {
				rename[from] = from // the core's own
				continue
			}
			ns := m.Name + "." + name
			rename[from] = "#/components/" + section + "/" + ns
			if comps[section] == nil {
				comps[section] = doc{}
			}
			comps[section][ns] = items[name]
		}
	}
	var refErr error
	rewrite := func(v any) any {
		return rewriteRefs(v, func(ref string) string {
			if to, ok := rename[ref]; ok {
				return to
			}
			if refErr == nil {
				refErr = fmt.Errorf("$ref %q: only refs to the fragment's own components are supported", ref)
			}
			return ref
		})
	}
	for _, items := range comps {
		for k, v := range items {
			items[k] = rewrite(v)
		}
	}

	// Paths: only under the module's prefixes.
	match := newMatcher(m.Routes)
	defaultSec, _ := frag["security"].([]any)
	paths := doc{}
	fragPaths, _ := frag["paths"].(doc)
	for _, tmpl := range sortedKeys(fragPaths) {
		if !underAny(tmpl, m.Prefixes) {
			log.Warn("openapi: module path outside its prefixes dropped", "module", m.Name, "path", tmpl, "prefixes", strings.Join(m.Prefixes, ","))
			continue
		}
		item, ok := fragPaths[tmpl].(doc)
		if !ok {
			continue
		}
		if _, ok := item["$ref"]; ok {
			log.Warn("openapi: module path item $ref dropped", "module", m.Name, "path", tmpl)
			continue
		}
		item = rewrite(item).(doc)
		for _, method := range methods {
			op, ok := item[method].(doc)
			if !ok {
				continue
			}
			decorate(op, m.Name, tag, match.route(method, tmpl), defaultSec)
		}
		paths[tmpl] = item
	}
	if refErr != nil {
		return part{}, refErr
	}
	return part{paths: paths, components: comps}, nil
}

// decorate tags op with the module's tag, prefixes its operation id and sets
// its security from the declared route r (nil: none declared). Without a
// declared requirement the fragment's own security stays, limited to the
// core's schemes.
func decorate(op doc, module, tag string, r interface {
	GetMinRole() string
	GetScopes() []string
}, defaultSec []any) {
	op["tags"] = []any{tag}
	if id, ok := op["operationId"].(string); ok && id != "" && !strings.HasPrefix(id, module+".") {
		op["operationId"] = module + "." + id
	}
	delete(op, "x-chacc-min-role")
	delete(op, "x-chacc-scopes")
	if r != nil && (r.GetMinRole() != "" || len(r.GetScopes()) > 0) {
		op["security"] = []any{doc{"bearerAuth": []any{}}, doc{"apiKeyAuth": []any{}}}
		if role := r.GetMinRole(); role != "" {
			op["x-chacc-min-role"] = role
		}
		if sc := r.GetScopes(); len(sc) > 0 {
			op["x-chacc-scopes"] = sc
		}
		return
	}
	sec, ok := op["security"].([]any)
	if !ok {
		sec = defaultSec
	}
	var kept []any
	for _, req := range sec {
		rm, ok := req.(doc)
		if !ok {
			continue
		}
		all := true
		for k := range rm {
			all = all && slices.Contains(coreSchemes, k)
		}
		if all {
			kept = append(kept, rm)
		}
	}
	if len(kept) == 0 {
		delete(op, "security")
	} else {
		op["security"] = kept
	}
}

func underAny(tmpl string, prefixes []string) bool {
	for _, p := range prefixes {
		if wire.UnderPrefix(tmpl, p) {
			return true
		}
	}
	return false
}

// rewriteRefs returns v with every "$ref" string passed through fn.
func rewriteRefs(v any, fn func(string) string) any {
	switch x := v.(type) {
	case doc:
		out := make(doc, len(x))
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out[k] = fn(s)
				continue
			}
			out[k] = rewriteRefs(e, fn)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = rewriteRefs(e, fn)
		}
		return out
	}
	return v
}

// refsToCore reports whether every $ref in v points to a component already
// merged into the core's (schemas come first, so an Error response that
// refers to the Error schema can merge too).
func refsToCore(v any, rename map[string]string) bool {
	ok := true
	rewriteRefs(v, func(s string) string {
		if rename[s] != s {
			ok = false
		}
		return s
	})
	return ok
}

// sameComponent reports whether two components are the same apart from
// documentation (description, title, example(s), extensions).
func sameComponent(a, b any) bool {
	return reflect.DeepEqual(stripDocs(a, ""), stripDocs(b, ""))
}

func stripDocs(v any, parent string) any {
	switch x := v.(type) {
	case doc:
		out := doc{}
		for k, e := range x {
			// Under "properties" the keys are property names, not keywords.
			if parent != "properties" && (k == "description" || k == "title" || k == "example" || k == "examples" || strings.HasPrefix(k, "x-")) {
				continue
			}
			out[k] = stripDocs(e, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripDocs(e, "")
		}
		return out
	}
	return v
}
