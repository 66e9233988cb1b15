package sdk_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
)

func TestOpenAPIFragment(t *testing.T) {
	b := sdk.OpenAPIFragment("Notes", "1.0.0", []sdk.Route{
		{Method: "GET", Path: "/notes/ping", Summary: "Liveness."},
		{Method: "GET", Path: "/notes/:id"},
		{Method: "DELETE", Path: "/notes/:note_id", MinRole: "operator", Scopes: []string{"notes:write"}},
		{Method: "POST", Path: "/notes/", RateLimit: &sdk.RateLimit{Requests: 3, Period: time.Minute}},
		{Method: "*", Path: "/notes/files/*"},
	})
	d, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	require.NoError(t, d.Validate(t.Context()), "%s", b)

	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	assert.Equal(t, true, raw[sdk.OpenAPIGeneratedKey])

	ping := d.Paths.Value("/notes/ping").Get
	require.NotNil(t, ping)
	assert.Equal(t, "Liveness.", ping.Summary)
	assert.Nil(t, ping.Security)
	assert.Nil(t, ping.Responses.Status(429))

	// ":id" and ":note_id" are one OpenAPI path: the first name is kept.
	assert.Nil(t, d.Paths.Value("/notes/{note_id}"))
	item := d.Paths.Value("/notes/{id}")
	require.NotNil(t, item)
	require.NotNil(t, item.Get)
	del := item.Delete
	require.NotNil(t, del)
	require.Len(t, del.Parameters, 1)
	assert.Equal(t, "id", del.Parameters[0].Value.Name)
	require.NotNil(t, del.Security)
	assert.Equal(t, openapi3.SecurityRequirements{{"bearerAuth": {}}, {"apiKeyAuth": {}}}, *del.Security)
	assert.Equal(t, "operator", del.Extensions["x-chacc-min-role"])
	assert.Equal(t, []any{"notes:write"}, del.Extensions["x-chacc-scopes"])
	assert.NotNil(t, del.Responses.Status(403))

	post := d.Paths.Value("/notes/").Post
	require.NotNil(t, post)
	require.NotNil(t, post.Responses.Status(429))
	assert.Contains(t, post.Description, "3 requests per 60 seconds")

	files := d.Paths.Value("/notes/files/{rest}")
	require.NotNil(t, files)
	for _, op := range []*openapi3.Operation{files.Get, files.Post, files.Put, files.Patch, files.Delete} {
		require.NotNil(t, op)
		assert.Equal(t, "rest", op.Parameters[0].Value.Name)
	}
}
