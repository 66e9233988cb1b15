package authapp

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

func TestAdminUsers(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		var ids []string
		for i := range 3 {
			ids = append(ids, e.register(fmt.Sprintf("user%d@example.com", i))["id"].(string))
		}
		adminTk := e.login(adminEmail, adminPassword)
		admin := e.as(adminTk.Access)
		adminID := e.principal(adminTk.Access).Subject
		userTk := e.login("user0@example.com", password)

		t.Run("list", func(t *testing.T) {
			resp, got := e.do(http.MethodGet, "/users", nil, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, 4.0, got["total"])
			assert.Equal(t, 50.0, got["limit"])
			users := got["users"].([]any)
			require.Len(t, users, 4)
			assert.Equal(t, adminEmail, users[0].(map[string]any)["email"], "oldest first")
			for _, u := range users {
				assert.NotContains(t, u, "password_hash")
			}

			resp, got = e.do(http.MethodGet, "/users?limit=2&offset=1", nil, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, 4.0, got["total"])
			page := got["users"].([]any)
			require.Len(t, page, 2)
			assert.Equal(t, ids[0], page[0].(map[string]any)["id"])
			assert.Equal(t, ids[1], page[1].(map[string]any)["id"])

			_, got = e.do(http.MethodGet, "/users?role=admin", nil, admin)
			assert.Equal(t, 1.0, got["total"])
			_, got = e.do(http.MethodGet, "/users?q=USER1", nil, admin)
			assert.Equal(t, 1.0, got["total"])
			_, got = e.do(http.MethodGet, "/users?q=%25", nil, admin)
			assert.Equal(t, 0.0, got["total"], "LIKE wildcards are literal")

			for _, q := range []string{"limit=0", "limit=201", "limit=x", "offset=-1", "role=root"} {
				resp, got := e.do(http.MethodGet, "/users?"+q, nil, admin)
				assertError(t, resp, got, http.StatusUnprocessableEntity, "VALIDATION_ERROR")
				assert.Contains(t, got["detail"], "'"+strings.Split(q, "=")[0]+"'")
			}
		})

		t.Run("refused to non-admins", func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPatch} {
				path := "/users"
				if method == http.MethodPatch {
					path += "/" + ids[1]
				}
				resp, got := e.do(method, path, `{"role": "admin"}`, e.as(userTk.Access))
				assertError(t, resp, got, http.StatusForbidden, "FORBIDDEN")
				resp, got = e.do(method, path, `{"role": "admin"}`)
				assertError(t, resp, got, http.StatusUnauthorized, "UNAUTHENTICATED")
			}
			// An admin's API key needs the users scope.
			key := e.createKey(admin, map[string]any{"name": "k", "scopes": []string{"outages:read"}})
			resp, got := e.do(http.MethodGet, "/users", nil, sdktest.AsPrincipal(e.apiKeyPrincipal(key)))
			assertError(t, resp, got, http.StatusForbidden, "INSUFFICIENT_SCOPE")
			key = e.createKey(admin, map[string]any{"name": "k", "scopes": []string{"auth:users"}})
			resp, _ = e.do(http.MethodGet, "/users", nil, sdktest.AsPrincipal(e.apiKeyPrincipal(key)))
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})

		t.Run("change role", func(t *testing.T) {
			before := len(e.h.Invalidations())
			resp, got := e.do(http.MethodPatch, "/users/"+ids[0], map[string]any{"role": "operator", "display_name": "Zero"}, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, "operator", got["role"])
			assert.Equal(t, "Zero", got["display_name"])
			require.Len(t, e.h.Invalidations(), before+1)
			assert.Equal(t, sdk.Invalidation{Subjects: []string{ids[0]}}, e.lastInvalidation())
			valid, _ := e.tokenValid(userTk.Access)
			assert.False(t, valid, "tokens with the old role stop working")

			// The same role again changes nothing and revokes nothing.
			resp, _ = e.do(http.MethodPatch, "/users/"+ids[0], map[string]any{"role": "operator"}, admin)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Len(t, e.h.Invalidations(), before+1)
		})

		t.Run("disable and enable", func(t *testing.T) {
			tk := e.login("user1@example.com", password)
			resp, got := e.do(http.MethodPatch, "/users/"+ids[1], map[string]any{"disabled": true}, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, false, got["is_active"])
			assert.Equal(t, sdk.Invalidation{Subjects: []string{ids[1]}}, e.lastInvalidation())
			valid, reason := e.tokenValid(tk.Access)
			assert.False(t, valid)
			assert.NotEmpty(t, reason)
			resp, got = e.do(http.MethodPost, "/login", map[string]string{"email": "user1@example.com", "password": password})
			assertError(t, resp, got, http.StatusUnauthorized, "ACCOUNT_DISABLED")

			resp, got = e.do(http.MethodPatch, "/users/"+ids[1], map[string]any{"is_active": true}, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, true, got["is_active"])
			e.login("user1@example.com", password)
		})

		t.Run("an admin cannot demote or disable themselves", func(t *testing.T) {
			for _, body := range []map[string]any{{"role": "viewer"}, {"is_active": false}, {"disabled": true}} {
				resp, got := e.do(http.MethodPatch, "/users/"+adminID, body, admin)
				assertError(t, resp, got, http.StatusConflict, "CANNOT_MODIFY_SELF")
			}
			resp, got := e.do(http.MethodPatch, "/users/"+adminID, map[string]any{"display_name": "Boss"}, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "admin", got["role"])
			valid, _ := e.tokenValid(adminTk.Access)
			assert.True(t, valid)
		})

		t.Run("another admin can", func(t *testing.T) {
			resp, _ := e.do(http.MethodPatch, "/users/"+ids[2], map[string]any{"role": "admin"}, admin)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			second := e.as(e.login("user2@example.com", password).Access)
			resp, got := e.do(http.MethodPatch, "/users/"+adminID, map[string]any{"role": "engineer"}, second)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, "engineer", got["role"])
		})

		tests := []struct {
			name   string
			id     string
			body   any
			status int
			code   string
		}{
			{"unknown user", "00000000-0000-0000-0000-000000000000", map[string]any{"role": "viewer"}, 404, "NOT_FOUND"},
			{"unknown role", ids[0], map[string]any{"role": "root"}, 422, "VALIDATION_ERROR"},
			{"nothing to change", ids[0], map[string]any{}, 422, "VALIDATION_ERROR"},
			{"contradiction", ids[0], map[string]any{"is_active": true, "disabled": true}, 422, "VALIDATION_ERROR"},
			{"is_active not a bool", ids[0], `{"is_active": "no"}`, 422, "VALIDATION_ERROR"},
			{"unknown field", ids[0], `{"password": "x"}`, 422, "VALIDATION_ERROR"},
			{"not JSON", ids[0], `role=admin`, 400, "INVALID_JSON"},
		}
		second := e.as(e.login("user2@example.com", password).Access)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, got := e.do(http.MethodPatch, "/users/"+tc.id, tc.body, second)
				assertError(t, resp, got, tc.status, tc.code)
			})
		}
	})
}

func TestFirstAdmin(t *testing.T) {
	t.Run("from the settings", func(t *testing.T) {
		e := start(t, options{mode: "production"})
		tk := e.login(adminEmail, adminPassword)
		assert.Equal(t, "admin", tk.User["role"])
		assert.Equal(t, true, tk.User["email_verified"])
		assert.True(t, e.logged("created the first admin from AUTH_ADMIN_EMAIL"))
		for _, l := range e.h.Logs() {
			assert.NotContains(t, fmt.Sprint(l.GetMessage(), l.GetAttrs()), adminPassword, "a given password is never logged")
		}
	})

	t.Run("generated in development mode", func(t *testing.T) {
		e := start(t, options{settings: map[string]string{"AUTH_ADMIN_EMAIL": "", "AUTH_ADMIN_PASSWORD": ""}})
		var pw string
		for _, l := range e.h.Logs() {
			if strings.Contains(l.GetMessage(), "DEVELOPMENT MODE: created the first admin") {
				assert.Equal(t, "warn", l.GetLevel())
				assert.Equal(t, devAdminEmail, l.GetAttrs()["email"])
				assert.Contains(t, l.GetMessage(), l.GetAttrs()["password"])
				pw = l.GetAttrs()["password"]
			}
		}
		require.NotEmpty(t, pw, "the generated password is logged")
		assert.NoError(t, checkPasswordPolicy(pw))
		tk := e.login(devAdminEmail, pw)
		assert.Equal(t, "admin", tk.User["role"])

		// A restart on the same database makes no other admin and logs no
		// password again.
		again := start(t, options{db: e.db, settings: map[string]string{"AUTH_ADMIN_EMAIL": "", "AUTH_ADMIN_PASSWORD": ""}})
		assert.False(t, again.logged("created the first admin"))
		admin := again.as(again.login(devAdminEmail, pw).Access)
		_, got := again.do(http.MethodGet, "/users?role=admin", nil, admin)
		assert.Equal(t, 1.0, got["total"])
	})

	t.Run("none in production without settings", func(t *testing.T) {
		e := start(t, options{mode: "production", settings: map[string]string{"AUTH_ADMIN_EMAIL": "", "AUTH_ADMIN_PASSWORD": ""}})
		assert.True(t, e.logged("no admin was created"))
		var n int64
		require.NoError(t, e.openDB().Model(&user{}).Count(&n).Error)
		assert.Zero(t, n)
	})

	t.Run("an existing account is not promoted", func(t *testing.T) {
		db := sdktest.SQLite(t)
		first := start(t, options{db: db, mode: "production", settings: map[string]string{"AUTH_ADMIN_EMAIL": "", "AUTH_ADMIN_PASSWORD": ""}})
		first.register("taken@example.com")
		e := start(t, options{db: db, mode: "production", settings: map[string]string{"AUTH_ADMIN_EMAIL": "taken@example.com"}})
		assert.True(t, e.logged("not promoted"))
		tk := e.login("taken@example.com", password)
		assert.Equal(t, "viewer", tk.User["role"])
	})

	t.Run("two processes starting at once make one", func(t *testing.T) {
		eachDatabase(t, func(t *testing.T, db *sdk.Database) {
			var (
				mu   sync.Mutex
				envs []*env
			)
			t.Run("start", func(t *testing.T) {
				for i := range 3 {
					t.Run(fmt.Sprint(i), func(t *testing.T) {
						t.Parallel()
						e := start(t, options{db: db, settings: map[string]string{"AUTH_ADMIN_EMAIL": "", "AUTH_ADMIN_PASSWORD": ""}})
						// Check before the subtest's cleanup stops the module.
						var created int
						for _, l := range e.h.Logs() {
							if strings.Contains(l.GetMessage(), "created the first admin") {
								created++
							}
						}
						mu.Lock()
						envs = append(envs, e)
						mu.Unlock()
						t.Log("created:", created)
						e.t = t
						e.createdAdmins = created
					})
				}
			})
			require.Len(t, envs, 3)
			created, kids := 0, map[string]bool{}
			for _, e := range envs {
				created += e.createdAdmins
				kids[e.h.Describe().GetAuthenticator().GetKeys()[0].GetKid()] = true
			}
			assert.Equal(t, 1, created, "one process made the admin and logged its password")
			assert.Len(t, kids, 1, "every process signs with the same key")
			gdb := (&env{t: t, db: db}).openDB()
			var n int64
			require.NoError(t, gdb.Model(&user{}).Where("role = ?", "admin").Count(&n).Error)
			assert.Equal(t, int64(1), n)
		})
	})
}
