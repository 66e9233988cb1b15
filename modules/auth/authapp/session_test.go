package authapp

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

func TestRefreshRotation(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		first := e.login("a@example.com", password)
		fam := e.principal(first.Access).Attributes["family"]

		resp, got := e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": first.Refresh})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		second := tokensOf(t, got)
		assert.Equal(t, "bearer", got["token_type"])
		assert.NotEqual(t, first.Refresh, second.Refresh)
		assert.NotEqual(t, first.Access, second.Access)
		assert.Equal(t, fam, e.principal(second.Access).Attributes["family"], "rotation keeps the family")

		// The rotated pair rotates again.
		resp, got = e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": second.Refresh})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		third := tokensOf(t, got)
		valid, _ := e.tokenValid(third.Access)
		assert.True(t, valid)
		invalidations := len(e.h.Invalidations())

		// Reusing a rotated token revokes the whole family.
		resp, got = e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": first.Refresh})
		assertError(t, resp, got, http.StatusUnauthorized, "REFRESH_TOKEN_REUSED")
		assert.Equal(t, "Refresh token reuse detected", got["detail"])
		require.Len(t, e.h.Invalidations(), invalidations+1)
		assert.Equal(t, sdk.Invalidation{Families: []string{fam}}, e.lastInvalidation())
		assert.True(t, e.logged("refresh token reuse detected"))

		// The newest tokens of the family stop working too.
		resp, got = e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": third.Refresh})
		assertError(t, resp, got, http.StatusUnauthorized, "TOKEN_REVOKED")
		valid, reason := e.tokenValid(third.Access)
		assert.False(t, valid)
		assert.Contains(t, reason, "revoked")

		// Other sessions of the user are untouched.
		other := e.login("a@example.com", password)
		valid, _ = e.tokenValid(other.Access)
		assert.True(t, valid)

		for _, tc := range []struct {
			name, body string
			status     int
			code       string
		}{
			{"unknown token", `{"refresh_token": "nope"}`, 401, "INVALID_REFRESH_TOKEN"},
			{"an access token", `{"refresh_token": "` + other.Access + `"}`, 401, "INVALID_REFRESH_TOKEN"},
			{"missing", `{}`, 422, "VALIDATION_ERROR"},
			{"not a string", `{"refresh_token": 1}`, 422, "VALIDATION_ERROR"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, got := e.do(http.MethodPost, "/refresh", tc.body)
				assertError(t, resp, got, tc.status, tc.code)
			})
		}
	})
}

func TestRefreshTokenExpires(t *testing.T) {
	e := start(t, options{settings: map[string]string{"AUTH_REFRESH_TOKEN_TTL": "2h"}})
	tk := e.login(adminEmail, adminPassword)
	e.clock.Advance(2 * time.Hour)
	resp, got := e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": tk.Refresh})
	assertError(t, resp, got, http.StatusUnauthorized, "REFRESH_TOKEN_EXPIRED")
}

func TestRefreshCarriesTheCurrentRole(t *testing.T) {
	e := start(t, options{})
	id := e.register("a@example.com")["id"].(string)
	tk := e.login("a@example.com", password)
	admin := e.login(adminEmail, adminPassword)

	resp, _ := e.do(http.MethodPatch, "/users/"+id, map[string]any{"role": "operator"}, e.as(admin.Access))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// The role change ended the session: its refresh token is dead...
	resp, got := e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": tk.Refresh})
	assertError(t, resp, got, http.StatusUnauthorized, "TOKEN_REVOKED")
	// ...and a new login carries the new role.
	c, _ := e.claims(e.login("a@example.com", password).Access)
	assert.Equal(t, "operator", c["role"])
}

func TestLogout(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		tk := e.login("a@example.com", password)
		other := e.login("a@example.com", password)
		valid, _ := e.tokenValid(tk.Access)
		require.True(t, valid)

		resp, got := e.do(http.MethodPost, "/logout", nil, e.as(tk.Access))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		assert.Equal(t, sdk.Invalidation{Families: []string{e.principal(tk.Access).Attributes["family"]}}, e.lastInvalidation())

		valid, reason := e.tokenValid(tk.Access)
		assert.False(t, valid)
		assert.Equal(t, "Token has been revoked", reason)
		resp, got = e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": tk.Refresh})
		assertError(t, resp, got, http.StatusUnauthorized, "TOKEN_REVOKED")
		// Only that session ends.
		valid, _ = e.tokenValid(other.Access)
		assert.True(t, valid)

		// Logging out twice is harmless.
		resp, _ = e.do(http.MethodPost, "/logout", nil, e.as(tk.Access))
		assert.Equal(t, http.StatusOK, resp.StatusCode)

		resp, got = e.do(http.MethodPost, "/logout", nil)
		assertError(t, resp, got, http.StatusUnauthorized, "UNAUTHENTICATED")

		// Another user's family id in a principal revokes nothing.
		admin := e.login(adminEmail, adminPassword)
		p := e.principal(admin.Access)
		p.Attributes["family"] = e.principal(other.Access).Attributes["family"]
		resp, _ = e.do(http.MethodPost, "/logout", nil, sdktest.AsPrincipal(p))
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		valid, _ = e.tokenValid(other.Access)
		assert.True(t, valid)
	})
}

func TestLogoutWithAnAPIKey(t *testing.T) {
	e := start(t, options{})
	admin := e.login(adminEmail, adminPassword)
	_, created := e.do(http.MethodPost, "/api-keys", map[string]any{"name": "ci", "scopes": []string{"auth:api_keys"}}, e.as(admin.Access))
	p := e.apiKeyPrincipal(created["key"].(string))
	resp, got := e.do(http.MethodPost, "/logout", nil, sdktest.AsPrincipal(p))
	assertError(t, resp, got, http.StatusBadRequest, "NO_SESSION")
}

func TestCheckToken(t *testing.T) {
	e := start(t, options{})
	id := e.register("a@example.com")["id"].(string)
	tk := e.login("a@example.com", password)
	ref := e.ref(tk.Access)

	tests := []struct {
		name   string
		ref    sdk.TokenRef
		reason string
	}{
		{"valid", ref, ""},
		{"unknown family", sdk.TokenRef{ID: ref.ID, Family: "nope", Subject: ref.Subject}, "Unknown session"},
		{"family of another subject", sdk.TokenRef{ID: ref.ID, Family: ref.Family, Subject: "someone-else"}, "Unknown session"},
		{"no family", sdk.TokenRef{ID: ref.ID, Subject: ref.Subject}, "Token has no session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.h.CheckToken(t.Context(), tc.ref)
			require.NoError(t, err)
			assert.Equal(t, tc.reason == "", r.Valid)
			assert.Equal(t, tc.reason, r.Reason)
		})
	}

	t.Run("disabled user", func(t *testing.T) {
		// Disabling also revokes the families; make the family check pass
		// to see the user check: disable directly in the database.
		require.NoError(t, e.openDB().Model(&user{}).Where("id = ?", id).Update("is_active", false).Error)
		r, err := e.h.CheckToken(t.Context(), ref)
		require.NoError(t, err)
		assert.False(t, r.Valid)
		assert.Equal(t, "User is disabled", r.Reason)
	})
	t.Run("user gone", func(t *testing.T) {
		require.NoError(t, e.openDB().Where("id = ?", id).Delete(&user{}).Error)
		r, err := e.h.CheckToken(t.Context(), ref)
		require.NoError(t, err)
		assert.False(t, r.Valid)
		assert.Equal(t, "User no longer exists", r.Reason)
	})
}

func TestMe(t *testing.T) {
	e := start(t, options{})
	e.register("a@example.com")
	tk := e.login("a@example.com", password)

	resp, got := e.do(http.MethodGet, "/me", nil, e.as(tk.Access))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "a@example.com", got["email"])
	assert.Equal(t, "viewer", got["role"])
	assert.NotContains(t, got, "password_hash")

	resp, got = e.do(http.MethodGet, "/me", nil)
	assertError(t, resp, got, http.StatusUnauthorized, "UNAUTHENTICATED")

	resp, got = e.do(http.MethodGet, "/me", nil, sdktest.AsPrincipal(sdk.Principal{Subject: "gone", Roles: []string{"viewer"}, Method: "jwt"}))
	assertError(t, resp, got, http.StatusUnauthorized, "UNAUTHENTICATED")
	resp, got = e.do(http.MethodGet, "/me", nil, sdktest.AsPrincipal(sdk.Principal{Subject: "x", Roles: []string{"guest"}, Method: "jwt"}))
	assertError(t, resp, got, http.StatusForbidden, "FORBIDDEN")
}

func TestPasswordReset(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		id := e.register("a@example.com")["id"].(string)
		tk := e.login("a@example.com", password)
		// Lock the account: a reset unlocks it.
		for range 5 {
			e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": "Wrong-Pass-1"})
		}

		// The request answers the same whether the account exists or not.
		for _, email := range []string{"a@example.com", "nobody@example.com"} {
			resp, got := e.do(http.MethodPost, "/password-reset", map[string]string{"email": email})
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, "If an account exists for this email, a password reset code has been sent.", got["message"])
		}
		assert.Empty(t, e.code("nobody@example.com", purposePasswordReset))
		code := e.code("a@example.com", purposePasswordReset)
		require.NotEmpty(t, code)
		// Asking again within the minute sends nothing, and still answers 200.
		resp, _ := e.do(http.MethodPost, "/password-reset", map[string]string{"email": "a@example.com"})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, 1, e.codeCount("a@example.com", purposePasswordReset))

		newPassword := "New-Horse-2"
		confirm := func(code, pw string) (*http.Response, map[string]any) {
			return e.do(http.MethodPost, "/password-reset/confirm", map[string]string{"email": "a@example.com", "code": code, "new_password": pw})
		}
		resp, got := confirm(code, "weak")
		assertError(t, resp, got, http.StatusUnprocessableEntity, "WEAK_PASSWORD")
		assert.Contains(t, got["detail"], "'new_password'")
		// The verification code is not a reset code.
		resp, got = confirm(e.code("a@example.com", purposeVerifyEmail), newPassword)
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		resp, got = confirm(otherCode(code), newPassword)
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")

		invalidations := len(e.h.Invalidations())
		resp, got = confirm(code, newPassword)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		require.Len(t, e.h.Invalidations(), invalidations+1)
		assert.Equal(t, sdk.Invalidation{Subjects: []string{id}}, e.lastInvalidation())

		// Every session ended: the old refresh token and access token.
		resp, got = e.do(http.MethodPost, "/refresh", map[string]string{"refresh_token": tk.Refresh})
		assertError(t, resp, got, http.StatusUnauthorized, "TOKEN_REVOKED")
		valid, _ := e.tokenValid(tk.Access)
		assert.False(t, valid)

		// The code is used up; the old password is gone; the lock too.
		resp, got = confirm(code, "Another-Horse-3")
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		resp, got = e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": password})
		assertError(t, resp, got, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		me := e.login("a@example.com", newPassword)
		assert.Equal(t, true, me.User["email_verified"], "the code proved the mailbox")
	})
}

func TestPasswordResetCodeExpires(t *testing.T) {
	e := start(t, options{})
	e.register("a@example.com")
	e.do(http.MethodPost, "/password-reset", map[string]string{"email": "a@example.com"})
	code := e.code("a@example.com", purposePasswordReset)
	e.clock.Advance(16 * time.Minute)
	resp, got := e.do(http.MethodPost, "/password-reset/confirm", map[string]string{"email": "a@example.com", "code": code, "new_password": "New-Horse-2"})
	assertError(t, resp, got, http.StatusBadRequest, "CODE_EXPIRED")

	resp, got = e.do(http.MethodPost, "/password-reset", `{"email": ""}`)
	assertError(t, resp, got, http.StatusUnprocessableEntity, "VALIDATION_ERROR")
}
