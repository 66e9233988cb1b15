package authapp

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

func TestAPIKeys(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		aliceID := e.register("alice@example.com")["id"].(string)
		e.register("bob@example.com")
		alice := e.as(e.login("alice@example.com", password).Access)
		bob := e.as(e.login("bob@example.com", password).Access)

		resp, created := e.do(http.MethodPost, "/api-keys", map[string]any{
			"name": "ci", "scopes": []string{"outages:read", "auth:api_keys", "outages:read"}, "expires_in_days": 30,
		}, alice)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %v", created)
		key := created["key"].(string)
		assert.Regexp(t, regexp.MustCompile(`^rak_[A-Za-z0-9_-]{43}$`), key)
		assert.Equal(t, key[:12], created["prefix"])
		assert.Equal(t, "ci", created["name"])
		assert.Equal(t, []any{"outages:read", "auth:api_keys"}, created["scopes"], "deduplicated")
		expiresAt, err := time.Parse(time.RFC3339, created["expires_at"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, e.clock.Now().Add(30*24*time.Hour), expiresAt, time.Second)
		id := created["id"].(string)

		// The core asks who the key is.
		r, err := e.h.AuthenticateAPIKey(t.Context(), key)
		require.NoError(t, err)
		require.True(t, r.Valid, r.Reason)
		assert.Equal(t, &sdk.Principal{
			Subject: aliceID, DisplayName: "User alice@example.com", Roles: []string{"viewer"},
			Scopes: []string{"outages:read", "auth:api_keys"}, Method: "api_key", Attributes: map[string]string{"api_key_id": id},
		}, r.Principal)
		assert.Equal(t, expiresAt.Unix(), r.ExpiresUnix)

		// Listed without the key, with the use recorded.
		resp, got := e.do(http.MethodGet, "/api-keys", nil, alice)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		list := got["api_keys"].([]any)
		require.Len(t, list, 1)
		item := list[0].(map[string]any)
		assert.Equal(t, id, item["id"])
		assert.Equal(t, key[:12], item["prefix"])
		assert.NotContains(t, item, "key")
		assert.NotNil(t, item["last_used_at"])
		assert.Equal(t, false, item["expired"])
		_, got = e.do(http.MethodGet, "/api-keys", nil, bob)
		assert.Empty(t, got["api_keys"], "each user sees their own keys")

		// The key itself acts as Alice on the module's routes, within its scopes.
		asKey := sdktest.AsPrincipal(*r.Principal)
		resp, got = e.do(http.MethodGet, "/me", nil, asKey)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "alice@example.com", got["email"])
		resp, got = e.do(http.MethodPost, "/api-keys", map[string]any{"name": "more", "scopes": []string{"sla:write"}}, asKey)
		assertError(t, resp, got, http.StatusForbidden, "INSUFFICIENT_SCOPE")
		resp, got = e.do(http.MethodPost, "/api-keys", map[string]any{"name": "unscoped"}, asKey)
		assertError(t, resp, got, http.StatusForbidden, "INSUFFICIENT_SCOPE")
		resp, _ = e.do(http.MethodPost, "/api-keys", map[string]any{"name": "narrower", "scopes": []string{"outages:read"}}, asKey)
		assert.Equal(t, http.StatusCreated, resp.StatusCode)
		narrow := e.apiKeyPrincipal(e.createKey(alice, map[string]any{"name": "read", "scopes": []string{"outages:read"}}))
		resp, got = e.do(http.MethodGet, "/api-keys", nil, sdktest.AsPrincipal(narrow))
		assertError(t, resp, got, http.StatusForbidden, "INSUFFICIENT_SCOPE")

		// Someone else's key is not found; one's own is revoked at once.
		resp, got = e.do(http.MethodDelete, "/api-keys/"+id, nil, bob)
		assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")
		resp, _ = e.do(http.MethodDelete, "/api-keys/"+id, nil, alice)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, sdk.Invalidation{APIKeyIDs: []string{id}}, e.lastInvalidation())
		r, err = e.h.AuthenticateAPIKey(t.Context(), key)
		require.NoError(t, err)
		assert.False(t, r.Valid)
		assert.Equal(t, "API key has been revoked", r.Reason)
		resp, got = e.do(http.MethodDelete, "/api-keys/"+id, nil, alice)
		assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")
		resp, got = e.do(http.MethodDelete, "/api-keys/not-a-uuid", nil, alice)
		assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")

		// An admin may delete anyone's key.
		bobKey := e.createKey(bob, map[string]any{"name": "bob's"})
		bobKeyID := e.apiKeyPrincipal(bobKey).Attributes["api_key_id"]
		admin := e.as(e.login(adminEmail, adminPassword).Access)
		resp, _ = e.do(http.MethodDelete, "/api-keys/"+bobKeyID, nil, admin)
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		r, _ = e.h.AuthenticateAPIKey(t.Context(), bobKey)
		assert.False(t, r.Valid)

		resp, got = e.do(http.MethodGet, "/api-keys", nil)
		assertError(t, resp, got, http.StatusUnauthorized, "UNAUTHENTICATED")
	})
}

// createKey makes an API key as the caller and returns it.
func (e *env) createKey(as sdktest.RequestOption, body map[string]any) string {
	e.t.Helper()
	resp, got := e.do(http.MethodPost, "/api-keys", body, as)
	require.Equal(e.t, http.StatusCreated, resp.StatusCode, "body: %v", got)
	return got["key"].(string)
}

func TestAPIKeyValidation(t *testing.T) {
	e := start(t, options{})
	e.register("a@example.com")
	a := e.as(e.login("a@example.com", password).Access)
	future := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	tests := []struct {
		name   string
		body   any
		field  string
		status int
	}{
		{"no name", map[string]any{"scopes": []string{"x"}}, "'name'", 422},
		{"long name", map[string]any{"name": strings.Repeat("n", 101)}, "'name'", 422},
		{"bad scope", map[string]any{"name": "k", "scopes": []string{"Has Space"}}, "'scopes'", 422},
		{"scopes not strings", `{"name": "k", "scopes": [1]}`, "'scopes'", 422},
		{"past expiry", map[string]any{"name": "k", "expires_at": e.clock.Now().Add(-time.Hour).Format(time.RFC3339)}, "'expires_at'", 422},
		{"bad expiry", map[string]any{"name": "k", "expires_at": "tomorrow"}, "'expires_at'", 422},
		{"both expiries", map[string]any{"name": "k", "expires_at": future, "expires_in_days": 1}, "expires_in_days", 422},
		{"zero days", map[string]any{"name": "k", "expires_in_days": 0}, "'expires_in_days'", 422},
		{"days not a number", `{"name": "k", "expires_in_days": "1"}`, "'expires_in_days'", 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := e.do(http.MethodPost, "/api-keys", tc.body, a)
			assertError(t, resp, got, tc.status, "VALIDATION_ERROR")
			assert.Contains(t, got["detail"], tc.field)
		})
	}
	t.Run("expires_at and the reference's expires_days", func(t *testing.T) {
		resp, got := e.do(http.MethodPost, "/api-keys", map[string]any{"name": "k", "expires_at": future}, a)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %v", got)
		assert.Equal(t, future, got["expires_at"])
		resp, got = e.do(http.MethodPost, "/api-keys", map[string]any{"name": "k", "expires_days": 2}, a)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %v", got)
		assert.Equal(t, e.clock.Now().Add(48*time.Hour).Format(time.RFC3339), got["expires_at"])
	})
}

func TestAPIKeyExpiryAndOwner(t *testing.T) {
	e := start(t, options{})
	id := e.register("a@example.com")["id"].(string)
	a := e.as(e.login("a@example.com", password).Access)
	admin := e.as(e.login(adminEmail, adminPassword).Access)
	forever := e.createKey(a, map[string]any{"name": "forever"})
	daily := e.createKey(a, map[string]any{"name": "day", "expires_in_days": 1})

	r, err := e.h.AuthenticateAPIKey(t.Context(), forever)
	require.NoError(t, err)
	assert.True(t, r.Valid)
	assert.Zero(t, r.ExpiresUnix, "no expiry")

	e.clock.Advance(24 * time.Hour)
	r, err = e.h.AuthenticateAPIKey(t.Context(), daily)
	require.NoError(t, err)
	assert.False(t, r.Valid)
	assert.Equal(t, "API key has expired", r.Reason)
	_, got := e.do(http.MethodGet, "/api-keys", nil, a)
	expired := map[string]bool{}
	for _, k := range got["api_keys"].([]any) {
		expired[k.(map[string]any)["name"].(string)] = k.(map[string]any)["expired"].(bool)
	}
	assert.Equal(t, map[string]bool{"forever": false, "day": true}, expired)

	// The key acts with the owner's current role...
	resp, _ := e.do(http.MethodPatch, "/users/"+id, map[string]any{"role": "engineer"}, admin)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"engineer"}, e.apiKeyPrincipal(forever).Roles)
	assert.Equal(t, sdk.Invalidation{Subjects: []string{id}}, e.lastInvalidation(), "the core drops the cached key with the user")

	// ...and stops with a disabled owner.
	resp, _ = e.do(http.MethodPatch, "/users/"+id, map[string]any{"is_active": false}, admin)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r, err = e.h.AuthenticateAPIKey(t.Context(), forever)
	require.NoError(t, err)
	assert.False(t, r.Valid)
	assert.Equal(t, "API key owner is disabled", r.Reason)

	for _, bad := range []string{"", "rak_", "rak_unknown", "sk_live_x", forever + "x"} {
		r, err := e.h.AuthenticateAPIKey(t.Context(), bad)
		require.NoError(t, err)
		assert.False(t, r.Valid, bad)
	}
}

func TestSecretsAreStoredHashed(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		tk := e.login("a@example.com", password)
		key := e.createKey(e.as(tk.Access), map[string]any{"name": "k"})
		code := e.code("a@example.com", purposeVerifyEmail)

		gdb := e.openDB()
		var u user
		require.NoError(t, gdb.Where("email = ?", "a@example.com").Take(&u).Error)
		assert.True(t, strings.HasPrefix(u.PasswordHash, "$2a$"), "bcrypt")
		assert.NotContains(t, u.PasswordHash, password)

		var codes []oneTimeCode
		require.NoError(t, gdb.Find(&codes).Error)
		require.Len(t, codes, 1)
		assert.Len(t, codes[0].CodeHash, 64)
		assert.NotContains(t, codes[0].CodeHash, code)

		var refresh []refreshToken
		require.NoError(t, gdb.Find(&refresh).Error)
		require.Len(t, refresh, 1)
		assert.Equal(t, sha256Hex(tk.Refresh), refresh[0].TokenHash)

		var keys []apiKey
		require.NoError(t, gdb.Find(&keys).Error)
		require.Len(t, keys, 1)
		assert.Equal(t, sha256Hex(key), keys[0].KeyHash)
		assert.Equal(t, key[:12], keys[0].Prefix)
	})
}
