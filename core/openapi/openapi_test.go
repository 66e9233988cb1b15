package openapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

var helloRoutes = []*modulev1.Route{
	{Method: "GET", Path: "/hello/ping", Summary: "Answers pong."},
	{Method: "GET", Path: "/hello/items/:id", Summary: "One item."},
	{Method: "POST", Path: "/hello/items", RateLimit: &modulev1.RateLimit{Requests: 5, PeriodSeconds: 60}},
	{Method: "GET", Path: "/hello/whoami", MinRole: "viewer"},
	{Method: "*", Path: "/hello/files/*", Scopes: []string{"files:read"}},
}

// build builds a document, checks it with kin-openapi and returns it, and
// what was logged.
func build(t *testing.T, mods ...Module) (*openapi3.T, string) {
	t.Helper()
	var logs bytes.Buffer
	b, err := Build("1.2.3", mods, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	d, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	require.NoError(t, d.Validate(t.Context()), "%s", b)
	return d, logs.String()
}

func op(t *testing.T, d *openapi3.T, method, path string) *openapi3.Operation {
	t.Helper()
	item := d.Paths.Value(path)
	require.NotNil(t, item, "path %s in %v", path, d.Paths.Keys())
	o := item.GetOperation(method)
	require.NotNil(t, o, "%s %s", method, path)
	return o
}

func TestCoreDocument(t *testing.T) {
	d, _ := build(t)
	assert.Equal(t, "1.2.3", d.Info.Version)
	for _, p := range []string{"/", "/health", "/health/live", "/health/ready", "/openapi.json", "/metrics", "/docs",
		"/modules/", "/modules/{name}", "/modules/{name}/enable", "/modules/{name}/disable", "/modules/{name}/uninstall", "/audit"} {
		assert.NotNil(t, d.Paths.Value(p), p)
	}
	require.Contains(t, d.Components.SecuritySchemes, "bearerAuth")
	assert.Equal(t, "bearer", d.Components.SecuritySchemes["bearerAuth"].Value.Scheme)
	assert.Equal(t, "JWT", d.Components.SecuritySchemes["bearerAuth"].Value.BearerFormat)
	assert.Equal(t, "X-API-Key", d.Components.SecuritySchemes["apiKeyAuth"].Value.Name)
	assert.Equal(t, "header", d.Components.SecuritySchemes["apiKeyAuth"].Value.In)

	// Lifecycle routes need admin (while an authenticator is enabled).
	for _, o := range []*openapi3.Operation{op(t, d, "POST", "/modules/"), op(t, d, "POST", "/modules/{name}/disable"), op(t, d, "GET", "/audit")} {
		require.NotNil(t, o.Security)
		assert.Len(t, *o.Security, 2)
		assert.Equal(t, "admin", o.Extensions["x-chacc-min-role"])
	}
	assert.Nil(t, op(t, d, "GET", "/health").Security)
	// Errors have the one shape.
	notFound := op(t, d, "GET", "/modules/{name}").Responses.Status(404).Value.Content.Get("application/json").Schema
	assert.Equal(t, "#/components/schemas/Error", notFound.Ref)
	assert.ElementsMatch(t, []string{"detail", "error_code", "request_id"}, notFound.Value.Required)
}

func TestGeneratedFragment(t *testing.T) {
	d, _ := build(t, Module{Name: "hello", DisplayName: "Hello", Version: "0.1.0", Prefixes: []string{"/hello"}, Routes: helloRoutes})

	ping := op(t, d, "GET", "/hello/ping")
	assert.Equal(t, []string{"Hello"}, ping.Tags)
	assert.Equal(t, "Answers pong.", ping.Summary)
	assert.Nil(t, ping.Security)

	item := op(t, d, "GET", "/hello/items/{id}")
	require.Len(t, item.Parameters, 1)
	assert.Equal(t, "id", item.Parameters[0].Value.Name)
	assert.Equal(t, "path", item.Parameters[0].Value.In)

	create := op(t, d, "POST", "/hello/items")
	require.NotNil(t, create.Responses.Status(429), "rate-limited route documents 429")
	assert.NotNil(t, create.Responses.Status(429).Value.Headers["Retry-After"])
	assert.Nil(t, ping.Responses.Status(429))

	who := op(t, d, "GET", "/hello/whoami")
	require.NotNil(t, who.Security)
	assert.Equal(t, openapi3.SecurityRequirements{{"bearerAuth": {}}, {"apiKeyAuth": {}}}, *who.Security)
	assert.Equal(t, "viewer", who.Extensions["x-chacc-min-role"])
	assert.Contains(t, who.Description, "viewer")
	assert.NotNil(t, who.Responses.Status(401))

	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		files := op(t, d, m, "/hello/files/{rest}")
		assert.NotNil(t, files.Security, m)
		assert.Equal(t, []any{"files:read"}, files.Extensions["x-chacc-scopes"], m)
	}

	// The module's Error is the core's: merged, not copied.
	assert.NotContains(t, d.Components.Schemas, "hello.Error")
	assert.NotContains(t, d.Components.Responses, "hello.Error")
	assert.Equal(t, "#/components/responses/Error", who.Responses.Status(401).Ref)
	var tag *openapi3.Tag
	for _, tg := range d.Tags {
		if tg.Name == "Hello" {
			tag = tg
		}
	}
	require.NotNil(t, tag)
	assert.Equal(t, "hello", tag.Extensions["x-chacc-module"])
}

func frag(t *testing.T, paths string, schemas string) []byte {
	t.Helper()
	s := `{"openapi":"3.0.3","info":{"title":"x","version":"1"},"paths":` + paths
	if schemas != "" {
		s += `,"components":{"schemas":` + schemas + `}`
	}
	s += "}"
	require.True(t, json.Valid([]byte(s)), s)
	return []byte(s)
}

func TestMerge(t *testing.T) {
	itemOp := func(ref string) string {
		return `{"get":{"operationId":"getItem","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"` + ref + `"}}}}}}}`
	}
	alpha := Module{
		Name: "alpha", DisplayName: "Twin", Version: "1.0.0", Prefixes: []string{"/alpha", "/api/v1/wallets"},
		Routes: []*modulev1.Route{
			{Method: "GET", Path: "/alpha/item"},
			{Method: "GET", Path: "/alpha/secret", MinRole: "admin"},
			{Method: "GET", Path: "/alpha/undocumented", Summary: "Only declared."},
			{Method: "DELETE", Path: "/alpha/things/:id"},
		},
		Fragment: frag(t, `{
			"/alpha/item": `+itemOp("#/components/schemas/Item")+`,
			"/api/v1/wallets": {"get":{"responses":{"200":{"description":"ok"}}}},
			"/alpha/secret": {"get":{"security":[{"myOwnScheme":[]}],"responses":{"200":{"description":"ok"}}}},
			"/alpha/open": {"get":{"security":[{"myOwnScheme":[]}],"responses":{"200":{"description":"ok"}}}},
			"/alpha/things/{thingId}": {"get":{"parameters":[{"name":"thingId","in":"path","required":true,"schema":{"type":"string"}}],"responses":{"200":{"description":"ok"}}}},
			"/beta/stolen": {"get":{"responses":{"200":{"description":"ok"}}}},
			"/health": {"get":{"responses":{"200":{"description":"hijack"}}}}
		}`, `{
			"Item": {"type":"object","properties":{"a":{"type":"string"},"b":{"$ref":"#/components/schemas/Part"}}},
			"Part": {"type":"integer"},
			"Error": {"type":"object","description":"ours","required":["detail","error_code","request_id"],
			          "properties":{"detail":{"type":"string"},"error_code":{"type":"string"},"request_id":{"type":"string"}}}
		}`),
	}
	beta := Module{
		Name: "beta", DisplayName: "Twin", Version: "2.0.0", Prefixes: []string{"/beta"},
		Routes: []*modulev1.Route{{Method: "GET", Path: "/beta/item"}},
		Fragment: frag(t, `{"/beta/item": `+itemOp("#/components/schemas/Item")+`}`,
			`{"Item": {"type":"array","items":{"type":"string"}}, "Error": {"type":"string"}}`),
	}
	d, logs := build(t, alpha, beta)

	// Colliding schema names live in each module's namespace, refs follow.
	require.Contains(t, d.Components.Schemas, "alpha.Item")
	require.Contains(t, d.Components.Schemas, "beta.Item")
	assert.NotContains(t, d.Components.Schemas, "Item")
	assert.Equal(t, "#/components/schemas/alpha.Item", op(t, d, "GET", "/alpha/item").Responses.Status(200).Value.Content.Get("application/json").Schema.Ref)
	assert.Equal(t, "#/components/schemas/beta.Item", op(t, d, "GET", "/beta/item").Responses.Status(200).Value.Content.Get("application/json").Schema.Ref)
	assert.Equal(t, "#/components/schemas/alpha.Part", d.Components.Schemas["alpha.Item"].Value.Properties["b"].Ref)
	// An Error identical to the core's (documentation aside) merges; a
	// different one is the module's own and leaves the core's alone.
	assert.NotContains(t, d.Components.Schemas, "alpha.Error")
	assert.Contains(t, d.Components.Schemas, "beta.Error")
	assert.Equal(t, "object", d.Components.Schemas["Error"].Value.Type.Slice()[0])

	// Operation ids are namespaced too: both modules have getItem.
	assert.Equal(t, "alpha.getItem", op(t, d, "GET", "/alpha/item").OperationID)
	assert.Equal(t, "beta.getItem", op(t, d, "GET", "/beta/item").OperationID)

	// Paths outside the module's prefixes are dropped and logged; an extra
	// prefix counts.
	assert.NotNil(t, d.Paths.Value("/api/v1/wallets"))
	assert.Equal(t, "Welcome message.", op(t, d, "GET", "/").Summary)
	assert.NotEqual(t, "hijack", *op(t, d, "GET", "/health").Responses.Status(200).Value.Description)
	assert.Contains(t, logs, "/beta/stolen")
	assert.Contains(t, logs, "path=/health")
	assert.Nil(t, d.Paths.Value("/beta/stolen"), "alpha's /beta/stolen must not land in beta's space")

	// Security: a declared requirement wins; a module's own scheme is not
	// the core's and goes.
	sec := op(t, d, "GET", "/alpha/secret")
	require.NotNil(t, sec.Security)
	assert.Equal(t, openapi3.SecurityRequirements{{"bearerAuth": {}}, {"apiKeyAuth": {}}}, *sec.Security)
	assert.Equal(t, "admin", sec.Extensions["x-chacc-min-role"])
	assert.Nil(t, op(t, d, "GET", "/alpha/open").Security)
	assert.NotContains(t, d.Components.SecuritySchemes, "myOwnScheme")

	// Declared routes the fragment leaves out are generated, under the
	// fragment's parameter names when the path is the same.
	assert.Equal(t, "Only declared.", op(t, d, "GET", "/alpha/undocumented").Summary)
	del := op(t, d, "DELETE", "/alpha/things/{thingId}")
	require.Len(t, del.Parameters, 1)
	assert.Equal(t, "thingId", del.Parameters[0].Value.Name)
	assert.Nil(t, d.Paths.Value("/alpha/things/{id}"))

	// Same display name: told apart by the module name.
	assert.Equal(t, []string{"Twin (alpha)"}, op(t, d, "GET", "/alpha/item").Tags)
	assert.Equal(t, []string{"Twin (beta)"}, op(t, d, "GET", "/beta/item").Tags)
}

func TestUnusableFragmentFallsBackToRoutes(t *testing.T) {
	routes := []*modulev1.Route{{Method: "GET", Path: "/gamma/ping", Summary: "Declared ping."}}
	for _, tc := range []struct {
		name     string
		fragment []byte
		log      string
	}{
		{name: "not JSON", fragment: []byte("openapi: 3.0.3"), log: "not a JSON object"},
		{name: "OpenAPI 2", fragment: []byte(`{"swagger":"2.0","paths":{}}`), log: "3.0.x is supported"},
		{name: "external ref", fragment: frag(t, `{"/gamma/ping":{"get":{"responses":{"200":{"$ref":"other.json#/x"}}}}}`, ""), log: "other.json"},
		{name: "dangling ref", fragment: frag(t, `{"/gamma/ping":{"get":{"responses":{"200":{"description":"x","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Nope"}}}}}}}}`, ""), log: "Nope"},
		{name: "invalid operation", fragment: frag(t, `{"/gamma/ping":{"get":{"summary":"no responses"}}}`, ""), log: "fragment unusable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := build(t, Module{Name: "gamma", Version: "1.0.0", Prefixes: []string{"/gamma"}, Routes: routes, Fragment: tc.fragment})
			o := op(t, d, "GET", "/gamma/ping")
			assert.Equal(t, "Declared ping.", o.Summary)
			assert.Equal(t, []string{"gamma"}, o.Tags)
			assert.Contains(t, logs, tc.log)
		})
	}
}
