package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// TestAuthCluster runs auth on two cores sharing one Postgres. Both cache
// the module's answers for ten minutes (CHACC_AUTH_CACHE_TTL=10m), so a
// credential revoked through one core and refused by the other within
// seconds was dropped from the other's cache by NOTIFY chacc_credentials,
// not by expiry.
func TestAuthCluster(t *testing.T) {
	var pg *storetest.Backend
	for _, b := range storetest.Backends(t) { // fails under CHACC_REQUIRE_SERVICES=1 without Postgres
		if b.Name == "postgres" {
			pg = &b
		}
	}
	if pg == nil {
		t.Skip("a cluster needs Postgres: set DATABASE_URL")
	}
	// No AUTH_JWT_PRIVATE_KEY: the module generates its signing key once and
	// keeps it in the shared database, so b's copy of the module hands b the
	// key a's copy signs with.
	env := []string{
		"AUTH_ADMIN_EMAIL=" + adminEmail, "AUTH_ADMIN_PASSWORD=" + adminPassword,
		"AUTH_BCRYPT_COST=10", "AUTH_LOGIN_RATE_LIMIT=1000/5m",
		"CHACC_AUTH_CACHE_TTL=10m",
	}
	a := startServer(t, *pg, env...)
	b := startPeer(t, a, env...)
	require.Equal(t, 201, a.uploadFile(helloV1).status)
	r := a.uploadFile(authModule(t))
	require.Equal(t, 201, r.status, "%s", r.body)

	admin := a.login(adminEmail, adminPassword)
	user := a.userWithRole(admin, "cluster@example.com", "viewer")
	// b runs hello and auth through its reconciler; until then whoami on b
	// is anonymous (b does not know auth is enabled yet) or 503.
	whoami := func(s *server, cred string) response { return s.authed(cred, "GET", "/hello/whoami", nil) }
	waitFor(t, 60*time.Second, "b to accept a's token", func() bool {
		r := whoami(b, user.access)
		return r.status == 200 && r.json(t)["authenticated"] == true
	})
	r = whoami(b, user.access)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, user.userID, r.json(t)["subject"], "b verified a's token with the key from the database")
	r = b.authed(admin.access, "GET", "/modules/auth", nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, "running", r.json(t)["state"], "b runs its own copy of auth: %s", r.body)

	// A second session of the same user, and the admin's, stay valid
	// throughout: the refusals below are for the revoked credential only.
	other := b.login("cluster@example.com", "Us3r!password")
	require.Equal(t, 200, whoami(a, other.access).status)
	require.Equal(t, 200, whoami(b, other.access).status)

	// Logout through a. a refuses at once (its own cache); b, whose cache
	// holds the family as valid for ten minutes, refuses within seconds.
	require.Equal(t, 200, whoami(b, user.access).status, "b's cache holds the family as valid")
	r = a.authed(user.access, "POST", authPrefix+"/logout", nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	assertAPIError(t, whoami(a, user.access), 401, "TOKEN_REVOKED")
	waitFor(t, 15*time.Second, "b to refuse the logged-out token", func() bool { return whoami(b, user.access).status == 401 })
	r = whoami(b, user.access)
	assertChallenge(t, r, "TOKEN_REVOKED")
	assertAPIError(t, r, 401, "TOKEN_REVOKED")
	assert.Equal(t, 200, whoami(b, other.access).status, "another session is untouched")
	assert.Equal(t, 200, whoami(a, other.access).status)

	// An API key deleted through b stops working on a, whose cache holds it.
	r = a.authed(other.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "cluster"})
	require.Equal(t, 201, r.status, "%s", r.body)
	key, keyID := r.json(t)["key"].(string), fmt.Sprint(r.json(t)["id"])
	require.Equal(t, 200, whoami(a, key).status)
	require.Equal(t, 200, whoami(b, key).status)
	r = b.authed(other.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil)
	require.Equal(t, 204, r.status, "%s", r.body)
	assertAPIError(t, whoami(b, key), 401, "INVALID_API_KEY")
	waitFor(t, 15*time.Second, "a to refuse the deleted key", func() bool { return whoami(a, key).status == 401 })
	assertAPIError(t, whoami(a, key), 401, "INVALID_API_KEY")

	// A role change through b ends the user's sessions on a too.
	require.Equal(t, 200, whoami(a, other.access).status, "a's cache holds the family as valid")
	r = b.authed(admin.access, "PATCH", authPrefix+"/users/"+other.userID, map[string]any{"role": "engineer"})
	require.Equal(t, 200, r.status, "%s", r.body)
	waitFor(t, 15*time.Second, "a to refuse the token of the old role", func() bool { return whoami(a, other.access).status == 401 })
	assertAPIError(t, whoami(a, other.access), 401, "TOKEN_REVOKED")
	r = whoami(a, a.login("cluster@example.com", "Us3r!password").access)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, []any{"engineer"}, r.json(t)["roles"])
	assert.Equal(t, 200, whoami(b, admin.access).status, "the admin's session is untouched")
}
