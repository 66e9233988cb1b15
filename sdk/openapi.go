package sdk

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chacc/chacc/sdk/wire"
)

// OpenAPIGeneratedKey marks a document written by [OpenAPIFragment] rather
// than by the module's author; the core prefers an author's document (from
// [Module.OpenAPI] or the archive's openapi.json) over a generated one.
const OpenAPIGeneratedKey = "x-chacc-generated"

// anyMethods are the operations a route declared with method "*" documents.
var anyMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// OpenAPIFragment returns a minimal OpenAPI 3 document for routes: one
// operation per route and method, with its path parameters (":id" becomes
// "{id}", a final "*" becomes "{rest}"), its summary, the security schemes
// bearerAuth and apiKeyAuth when the route declares a role or scopes (the
// role in x-chacc-min-role, the scopes in x-chacc-scopes), and a 429 answer
// when it declares a rate limit. Errors refer to the Error schema, the one
// error shape. Describe serves it when [Module.OpenAPI] is empty; authors
// who want request and response schemas write their own document.
func OpenAPIFragment(title, version string, routes []Route) []byte {
	paths := map[string]map[string]any{}
	// Templates that differ only in parameter names are one OpenAPI path;
	// the first route's names are kept.
	byShape := map[string]string{}
	for _, r := range routes {
		tmpl, params := openAPIPath(r.Path)
		shape := wire.TemplateWith(tmpl, "{}")
		if first, ok := byShape[shape]; ok && first != tmpl {
			tmpl = first
			params = wire.TemplateParams(first)
		} else {
			byShape[shape] = tmpl
		}
		item := paths[tmpl]
		if item == nil {
			item = map[string]any{}
			paths[tmpl] = item
		}
		methods := []string{strings.ToUpper(r.Method)}
		if r.Method == "*" || r.Method == "" {
			methods = anyMethods
		}
		for _, m := range methods {
			key := strings.ToLower(m)
			switch key {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
			default:
				continue
			}
			if _, dup := item[key]; dup {
				continue
			}
			item[key] = routeOperation(r, params)
		}
	}
	errorContent := map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}
	doc := map[string]any{
		"openapi":           "3.0.3",
		"info":              map[string]any{"title": title, "version": version},
		"paths":             paths,
		OpenAPIGeneratedKey: true,
		"components": map[string]any{
			"schemas": map[string]any{
				"Error": map[string]any{
					"type":     "object",
					"required": []string{"detail", "error_code", "request_id"},
					"properties": map[string]any{
						"detail":     map[string]any{"type": "string"},
						"error_code": map[string]any{"type": "string"},
						"request_id": map[string]any{"type": "string"},
					},
				},
			},
			"responses": map[string]any{
				"Error": map[string]any{"description": "Error.", "content": errorContent},
			},
			"securitySchemes": map[string]any{
				"bearerAuth": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"apiKeyAuth": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
			},
		},
	}
	b, _ := json.Marshal(doc) // only maps, strings and slices: cannot fail
	return b
}

func routeOperation(r Route, params []string) map[string]any {
	errRef := map[string]any{"$ref": "#/components/responses/Error"}
	responses := map[string]any{
		"200":     map[string]any{"description": "OK."},
		"default": errRef,
	}
	op := map[string]any{"responses": responses}
	if r.Summary != "" {
		op["summary"] = r.Summary
	}
	var notes []string
	if len(params) > 0 {
		ps := make([]any, 0, len(params))
		for _, p := range params {
			param := map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}}
			if p == "rest" && strings.HasSuffix(r.Path, "*") {
				param["description"] = "The rest of the path; may contain '/'."
			}
			ps = append(ps, param)
		}
		op["parameters"] = ps
	}
	if r.MinRole != "" || len(r.Scopes) > 0 {
		op["security"] = []any{map[string]any{"bearerAuth": []any{}}, map[string]any{"apiKeyAuth": []any{}}}
		responses["401"] = errRef
		responses["403"] = errRef
		if r.MinRole != "" {
			op["x-chacc-min-role"] = r.MinRole
			notes = append(notes, "Requires the role "+r.MinRole+" or above.")
		}
		if len(r.Scopes) > 0 {
			op["x-chacc-scopes"] = r.Scopes
			notes = append(notes, "API keys need the scopes "+strings.Join(r.Scopes, ", ")+".")
		}
	}
	if rl := r.RateLimit; rl != nil && rl.Requests > 0 {
		responses["429"] = map[string]any{
			"description": "Rate limited; retry after Retry-After seconds.",
			"headers":     map[string]any{"Retry-After": map[string]any{"schema": map[string]any{"type": "integer"}}},
			"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
		}
		period := max(rl.Period, time.Second)
		op["x-chacc-rate-limit"] = map[string]any{"requests": rl.Requests, "period_seconds": int(period / time.Second)}
		notes = append(notes, fmt.Sprintf("Rate limited to %d requests per %d seconds per client.", rl.Requests, period/time.Second))
	}
	if len(notes) > 0 {
		op["description"] = strings.Join(notes, " ")
	}
	return op
}

// openAPIPath turns a route pattern into an OpenAPI path template and the
// names of its parameters, in order.
func openAPIPath(pattern string) (string, []string) {
	segs := strings.Split(pattern, "/")
	var params []string
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":") && len(s) > 1:
			params = append(params, s[1:])
			segs[i] = "{" + s[1:] + "}"
		case s == "*" && i == len(segs)-1:
			params = append(params, "rest")
			segs[i] = "{rest}"
		}
	}
	return strings.Join(segs, "/"), params
}

// openAPI is the fragment Describe serves: the author's, or one generated
// from the declared routes.
func (s *Server) openAPI(m Manifest) []byte {
	if len(s.mod.OpenAPI) > 0 {
		return s.mod.OpenAPI
	}
	title := m.DisplayName
	if title == "" {
		title = m.Name
	}
	return OpenAPIFragment(title, m.Version, s.mod.Routes)
}
