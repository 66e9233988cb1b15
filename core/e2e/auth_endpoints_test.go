package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// TestAuthEndpoints drives every endpoint of the auth module through the real
// core and module processes, success and failure paths that
// TestAuthCoreIntegration and its neighbours do not cover. One core per
// backend serves the whole sequence (the subtests build on each other's
// users); a second one, in parallel, runs with registration turned off.
func TestAuthEndpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		t.Run("registration off", func(t *testing.T) {
			t.Parallel()
			s, admin := startAuthed(t, b, newAuthKit(t, "AUTH_ALLOW_REGISTRATION=false"))
			r := s.authed("", "POST", authPrefix+"/register", map[string]string{"email": "nope@example.com", "password": "Us3r!password"})
			assertAPIError(t, r, 403, "REGISTRATION_DISABLED")
			r = s.authed(admin.access, "GET", authPrefix+"/users?q=nope", nil)
			require.Equal(t, 200, r.status, "%s", r.body)
			assert.EqualValues(t, 0, r.json(t)["total"], "no account was made: %s", r.body)
		})
		t.Run("endpoints", func(t *testing.T) {
			t.Parallel()
			authEndpoints(t, b)
		})
	})
}

func authEndpoints(t *testing.T, b storetest.Backend) {
	s, admin := startAuthed(t, b, newAuthKit(t))
	const (
		regEmail, regUser, regPW = "reg@example.com", "reguser", "Reg!stered1"
		exhEmail                 = "exhaust@example.com"
		ghostEmail               = "ghost@example.com" // never registered
	)
	var regID string
	newPW := "N3w!password"
	// step runs one part of the sequence; the server's helpers report to
	// the step's t, and a failed step ends the sequence (the next ones
	// build on it).
	step := func(name string, fn func(t *testing.T, s *server)) {
		t.Helper()
		if !t.Run(name, func(t *testing.T) { fn(t, s.reportingTo(t)) }) {
			t.FailNow()
		}
	}

	step("register", func(t *testing.T, s *server) {
		for pw, rule := range map[string]string{
			"Sh0rt!":                   "at least 8 characters",
			"alllower1!x":              "an upper-case letter",
			"ALLUPPER1!X":              "a lower-case letter",
			"NoDigits!here":            "a digit",
			"NoSpecial1here":           "a special character",
			strings.Repeat("Aa1!", 19): "at most 72 bytes",
		} {
			r := s.authed("", "POST", authPrefix+"/register", map[string]string{"email": "weak@example.com", "password": pw})
			m := assertAPIError(t, r, 422, "WEAK_PASSWORD")
			assert.Contains(t, m["detail"], rule, "password %q", pw)
		}

		r := s.authed("", "POST", authPrefix+"/register", map[string]string{
			"email": "Reg@Example.com", "password": regPW, "display_name": "Reg Istered", "username": "RegUser",
		})
		require.Equal(t, 201, r.status, "%s", r.body)
		u := r.json(t)
		assertNoSecrets(t, r.body, regPW)
		regID, _ = u["id"].(string)
		require.NotEmpty(t, regID)
		assert.Equal(t, regEmail, u["email"], "the email is kept in lower case")
		assert.Equal(t, regUser, u["username"])
		assert.Equal(t, "Reg Istered", u["display_name"])
		assert.Equal(t, "viewer", u["role"])
		assert.Equal(t, true, u["is_active"])
		assert.Equal(t, false, u["email_verified"])

		r = s.authed("", "POST", authPrefix+"/register", map[string]string{"email": "REG@example.com", "password": regPW})
		assertAPIError(t, r, 409, "EMAIL_TAKEN")
		r = s.authed("", "POST", authPrefix+"/register", map[string]string{"email": "other@example.com", "password": regPW, "username": "reguser"})
		assertAPIError(t, r, 409, "USERNAME_TAKEN")

		raw := func(body string) response {
			return s.do("POST", authPrefix+"/register", strings.NewReader(body), "Content-Type", "application/json")
		}
		assertAPIError(t, raw(`{"email": "x@example.com", "password": `), 400, "INVALID_JSON")
		assertAPIError(t, raw(`not json`), 400, "INVALID_JSON")
		assertAPIError(t, raw(``), 400, "INVALID_JSON")
		m := assertAPIError(t, raw(`{"email":"x@example.com","password":"Us3r!password","role":"admin"}`), 422, "VALIDATION_ERROR")
		assert.Contains(t, m["detail"], "role", "the unknown field is named")
		m = assertAPIError(t, raw(`{"email":42,"password":"Us3r!password"}`), 422, "VALIDATION_ERROR")
		assert.Contains(t, m["detail"], "email")
		m = assertAPIError(t, raw(`{"email":"not-an-address","password":"Us3r!password"}`), 422, "VALIDATION_ERROR")
		assert.Contains(t, m["detail"], "email")
		m = assertAPIError(t, raw(`{"email":"x@example.com","password":"Us3r!password","username":"a"}`), 422, "VALIDATION_ERROR")
		assert.Contains(t, m["detail"], "username")

		r = s.authed("", "POST", authPrefix+"/register", map[string]string{"email": exhEmail, "password": regPW})
		require.Equal(t, 201, r.status, "%s", r.body)
	})

	step("verify-email", func(t *testing.T, s *server) {
		code := waitCode(t, s, regEmail, "verify_email", 1)
		verify := func(email, code string) response {
			return s.authed("", "POST", authPrefix+"/verify-email", map[string]string{"email": email, "code": code})
		}
		m := assertAPIError(t, verify(regEmail, otherCode(code)), 400, "INVALID_CODE")
		assert.Contains(t, m["detail"], "2 attempt(s) left")
		assertAPIError(t, verify(regEmail, "12ab56"), 422, "VALIDATION_ERROR")
		assertAPIError(t, verify("", code), 422, "VALIDATION_ERROR")
		// An unknown address gets the answer a wrong code gets.
		m = assertAPIError(t, verify(ghostEmail, code), 400, "INVALID_CODE")
		assert.Equal(t, "Invalid or expired code.", m["detail"])

		r := verify(regEmail, code)
		require.Equal(t, 200, r.status, "%s", r.body)
		u, _ := r.json(t)["user"].(map[string]any)
		assert.Equal(t, true, u["email_verified"], "%s", r.body)
		assert.Equal(t, regID, u["id"])
		assertNoSecrets(t, r.body, regPW)
		// A code is used once.
		assertAPIError(t, verify(regEmail, code), 400, "INVALID_CODE")

		// Three wrong codes spend the code: then even the right one fails.
		code = waitCode(t, s, exhEmail, "verify_email", 1)
		assertAPIError(t, verify(exhEmail, otherCode(code)), 400, "INVALID_CODE")
		assertAPIError(t, verify(exhEmail, otherCode(code)), 400, "INVALID_CODE")
		assertAPIError(t, verify(exhEmail, otherCode(code)), 400, "CODE_ATTEMPTS_EXCEEDED")
		assertAPIError(t, verify(exhEmail, code), 400, "CODE_ATTEMPTS_EXCEEDED")
	})

	step("resend-verification", func(t *testing.T, s *server) {
		resend := func(email string) response {
			return s.authed("", "POST", authPrefix+"/resend-verification", map[string]string{"email": email})
		}
		// Registration sent exhEmail its first code seconds ago: a second
		// one within the minute is refused.
		r := resend(exhEmail)
		m := assertAPIError(t, r, 429, "RATE_LIMITED")
		ra := r.header.Get("Retry-After")
		n, err := strconv.Atoi(ra)
		require.NoError(t, err, "Retry-After %q", ra)
		assert.True(t, n >= 1 && n <= 60, "Retry-After %d", n)
		assert.Contains(t, m["detail"], "minute")

		// Unknown and verified addresses are answered as sent ones, and get no code.
		r = resend(ghostEmail)
		require.Equal(t, 200, r.status, "%s", r.body)
		r2 := resend(regEmail)
		require.Equal(t, 200, r2.status, "%s", r2.body)
		assert.JSONEq(t, string(r.body), string(r2.body))
		assertAPIError(t, resend(""), 422, "VALIDATION_ERROR")
		assertAPIError(t, s.do("POST", authPrefix+"/resend-verification", strings.NewReader("{"), "Content-Type", "application/json"), 400, "INVALID_JSON")
	})

	step("login", func(t *testing.T, s *server) {
		login := func(path string, body any) response { return s.authed("", "POST", authPrefix+path, body) }
		form := func(path string, v url.Values) response {
			return s.do("POST", authPrefix+path, strings.NewReader(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		}
		checkSession := func(r response) string {
			t.Helper()
			require.Equal(t, 200, r.status, "%s", r.body)
			m := r.json(t)
			assert.Equal(t, "bearer", m["token_type"])
			assert.Greater(t, m["expires_in"], float64(0))
			assert.NotEmpty(t, m["refresh_token"])
			u, _ := m["user"].(map[string]any)
			assert.Equal(t, regID, u["id"], "%s", r.body)
			assertNoSecrets(t, r.body, regPW)
			tok, _ := m["access_token"].(string)
			w := s.authed(tok, "GET", "/hello/whoami", nil)
			require.Equal(t, 200, w.status, "%s", w.body)
			assert.Equal(t, regID, w.json(t)["subject"])
			return tok
		}
		checkSession(login("/login", map[string]string{"username": regUser, "password": regPW}))
		checkSession(login("/login", map[string]string{"username": "RegUser", "password": regPW}))
		checkSession(login("/token", map[string]string{"email": regEmail, "password": regPW}))
		checkSession(form("/token", url.Values{"grant_type": {"password"}, "username": {regUser}, "password": {regPW}}))
		checkSession(form("/token", url.Values{"grant_type": {"password"}, "username": {regEmail}, "password": {regPW}, "scope": {""}}))
		checkSession(form("/login", url.Values{"email": {regEmail}, "password": {regPW}}))

		m := assertAPIError(t, form("/token", url.Values{"grant_type": {"client_credentials"}, "username": {regUser}, "password": {regPW}}), 400, "UNSUPPORTED_GRANT_TYPE")
		assert.Contains(t, m["detail"], "grant_type")
		// Wrong password and unknown name: one answer, no enumeration.
		wrong := login("/token", map[string]string{"email": regEmail, "password": "Wr0ng!password"})
		m = assertAPIError(t, wrong, 401, "INVALID_CREDENTIALS")
		assert.Equal(t, "Invalid email or password", m["detail"])
		assert.Contains(t, wrong.header.Get("WWW-Authenticate"), "Bearer")
		m2 := assertAPIError(t, form("/token", url.Values{"grant_type": {"password"}, "username": {"nobody"}, "password": {regPW}}), 401, "INVALID_CREDENTIALS")
		assert.Equal(t, m["detail"], m2["detail"])
		assertAPIError(t, login("/login", map[string]string{"email": regEmail}), 422, "VALIDATION_ERROR")
		assertAPIError(t, login("/login", map[string]string{"user": regEmail, "password": regPW}), 422, "VALIDATION_ERROR")
		assertAPIError(t, s.do("POST", authPrefix+"/token", strings.NewReader(`{"email":`), "Content-Type", "application/json"), 400, "INVALID_JSON")
	})

	step("refresh", func(t *testing.T, s *server) {
		r := s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": "garbage-" + strings.Repeat("x", 40)})
		assertAPIError(t, r, 401, "INVALID_REFRESH_TOKEN")
		assertAPIError(t, s.authed("", "POST", authPrefix+"/refresh", map[string]string{}), 422, "VALIDATION_ERROR")
		assertAPIError(t, s.do("POST", authPrefix+"/refresh", strings.NewReader("[1]"), "Content-Type", "application/json"), 400, "INVALID_JSON")
	})

	step("logout and me", func(t *testing.T, s *server) {
		r := s.do("POST", authPrefix+"/logout", nil)
		assertAPIError(t, r, 401, "AUTHENTICATION_REQUIRED")
		assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		assertAPIError(t, s.authed("not.a.jwt", "POST", authPrefix+"/logout", nil), 401, "INVALID_TOKEN")
		assertAPIError(t, s.get(authPrefix+"/me"), 401, "AUTHENTICATION_REQUIRED")

		sess := s.login(regEmail, regPW)
		r = s.authed(sess.access, "GET", authPrefix+"/me", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		me := r.json(t)
		assertNoSecrets(t, r.body, regPW)
		for k, want := range map[string]any{
			"id": regID, "email": regEmail, "username": regUser, "display_name": "Reg Istered",
			"role": "viewer", "is_active": true, "email_verified": true,
		} {
			assert.Equal(t, want, me[k], "me.%s in %s", k, r.body)
		}
		assert.NotEmpty(t, me["created_at"])
		assert.NotEmpty(t, me["last_login_at"], "set by the login")

		// An API key has no session to end.
		r = s.authed(sess.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "logout-probe"})
		require.Equal(t, 201, r.status, "%s", r.body)
		key, keyID := r.json(t)["key"].(string), fmt.Sprint(r.json(t)["id"])
		assertAPIError(t, s.authed(key, "POST", authPrefix+"/logout", nil), 400, "NO_SESSION")
		require.Equal(t, 204, s.authed(sess.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil).status)

		require.Equal(t, 200, s.authed(sess.access, "POST", authPrefix+"/logout", nil).status)
		assertAPIError(t, s.authed(sess.access, "GET", authPrefix+"/me", nil), 401, "TOKEN_REVOKED")
	})

	step("password-reset", func(t *testing.T, s *server) {
		reset := func(email string) response {
			return s.authed("", "POST", authPrefix+"/password-reset", map[string]string{"email": email})
		}
		known, unknown := reset(regEmail), reset(ghostEmail)
		require.Equal(t, 200, known.status, "%s", known.body)
		require.Equal(t, 200, unknown.status, "%s", unknown.body)
		assert.Equal(t, string(known.body), string(unknown.body), "no account enumeration")
		assert.Equal(t, known.header.Get("Content-Type"), unknown.header.Get("Content-Type"))
		// Asked again within the minute: the same 200, and no second code.
		again := reset(regEmail)
		require.Equal(t, 200, again.status, "%s", again.body)
		assert.Equal(t, string(known.body), string(again.body))
		assertAPIError(t, reset(""), 422, "VALIDATION_ERROR")
		code := waitCode(t, s, regEmail, "password_reset", 1)

		// Two live sessions, both known to the core's cache as valid.
		s1, s2 := s.login(regEmail, regPW), s.login(regEmail, regPW)
		for _, x := range []session{s1, s2} {
			require.Equal(t, 200, s.authed(x.access, "GET", "/hello/whoami", nil).status)
		}

		confirm := func(email, code, pw string) response {
			return s.authed("", "POST", authPrefix+"/password-reset/confirm", map[string]string{"email": email, "code": code, "new_password": pw})
		}
		m := assertAPIError(t, confirm(regEmail, otherCode(code), newPW), 400, "INVALID_CODE")
		assert.Contains(t, m["detail"], "attempt(s) left")
		m = assertAPIError(t, confirm(regEmail, code, "weakpass"), 422, "WEAK_PASSWORD")
		assert.Contains(t, m["detail"], "new_password")
		assertAPIError(t, confirm(ghostEmail, code, newPW), 400, "INVALID_CODE")
		assertAPIError(t, confirm(regEmail, "abc", newPW), 422, "VALIDATION_ERROR")
		// The wrong code did not change the password.
		require.Equal(t, 200, s.authed("", "POST", authPrefix+"/login", map[string]string{"email": regEmail, "password": regPW}).status)

		r := confirm(regEmail, code, newPW)
		require.Equal(t, 200, r.status, "%s", r.body)
		// Every session ends at once, through the core.
		for _, x := range []session{s1, s2} {
			assertChallenge(t, s.authed(x.access, "GET", "/hello/whoami", nil), "TOKEN_REVOKED")
			assertAPIError(t, s.authed(x.access, "GET", "/hello/whoami", nil), 401, "TOKEN_REVOKED")
			assertAPIError(t, s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": x.refresh}), 401, "TOKEN_REVOKED")
		}
		assertAPIError(t, s.authed("", "POST", authPrefix+"/login", map[string]string{"email": regEmail, "password": regPW}), 401, "INVALID_CREDENTIALS")
		assertAPIError(t, confirm(regEmail, code, "An0ther!password"), 400, "INVALID_CODE")
		fresh := s.login(regEmail, newPW)
		assert.Equal(t, regID, fresh.userID)

		// No code ever went to the address without an account, and the
		// repeated request made none: the log says so by now (the known
		// address's code came after both requests).
		assert.Empty(t, loggedCodes(s, ghostEmail, "password_reset"))
		assert.Len(t, loggedCodes(s, regEmail, "password_reset"), 1)
		assert.Empty(t, loggedCodes(s, ghostEmail, "verify_email"))
		assert.Len(t, loggedCodes(s, exhEmail, "verify_email"), 1, "the refused resend sent nothing")
	})

	step("api-keys", func(t *testing.T, s *server) {
		owner := s.login(regEmail, newPW)
		other := s.userWithRole(admin, "keyowner@example.com", "viewer")

		// A key that expires in a few seconds (expires_at has whole seconds).
		expAt := time.Now().Add(6 * time.Second).UTC().Truncate(time.Second)
		r := s.authed(owner.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "short-lived", "expires_at": expAt.Format(time.RFC3339)})
		require.Equal(t, 201, r.status, "%s", r.body)
		shortKey := r.json(t)["key"].(string)
		if time.Now().Before(expAt.Add(-2 * time.Second)) { // a sanity check only when clearly before expiry
			require.Equal(t, 200, s.authed(shortKey, "GET", "/hello/whoami", nil).status, "the key works before it expires")
		}

		r = s.authed(owner.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "ci", "scopes": []string{"auth:api_keys"}, "expires_in_days": 30})
		require.Equal(t, 201, r.status, "%s", r.body)
		created := r.json(t)
		key, _ := created["key"].(string)
		keyID := fmt.Sprint(created["id"])
		require.True(t, strings.HasPrefix(key, "rak_"), "%s", r.body)
		assert.Equal(t, key[:12], created["prefix"])
		assert.Equal(t, []any{"auth:api_keys"}, created["scopes"])
		assert.NotNil(t, created["expires_at"])
		assert.Equal(t, false, created["expired"])

		// The listing shows the prefix, never the key.
		r = s.authed(owner.access, "GET", authPrefix+"/api-keys", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.NotContains(t, string(r.body), key)
		assert.NotContains(t, string(r.body), key[12:])
		listed := keysByID(t, r)
		require.Contains(t, listed, keyID, "%s", r.body)
		assert.Equal(t, key[:12], listed[keyID]["prefix"])
		_, hasKey := listed[keyID]["key"]
		assert.False(t, hasKey, "the key is shown once: %s", r.body)
		// The key's owner sees their keys only.
		r = s.authed(other.access, "GET", authPrefix+"/api-keys", nil)
		require.Equal(t, 200, r.status)
		assert.NotContains(t, keysByID(t, r), keyID)

		// Used through the core, restricted to its scopes.
		r = s.authed(key, "GET", authPrefix+"/api-keys", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assertAPIError(t, s.authed(key, "POST", authPrefix+"/api-keys", map[string]any{"name": "wider", "scopes": []string{"auth:users"}}), 403, "INSUFFICIENT_SCOPE")
		assertAPIError(t, s.authed(key, "POST", authPrefix+"/api-keys", map[string]any{"name": "unscoped"}), 403, "INSUFFICIENT_SCOPE")

		// Bad input.
		for body, field := range map[string]string{
			`{"name":""}`:                                                          "name",
			`{"name":"x","scopes":["Not A Scope"]}`:                                "scopes",
			`{"name":"x","expires_at":"2001-01-01T00:00:00Z"}`:                     "expires_at",
			`{"name":"x","expires_at":"tomorrow"}`:                                 "expires_at",
			`{"name":"x","expires_in_days":0}`:                                     "expires_in_days",
			`{"name":"x","expires_in_days":5,"expires_at":"2099-01-01T00:00:00Z"}`: "expires_at",
			`{"name":"x","secret":"mine"}`:                                         "secret",
		} {
			r := s.do("POST", authPrefix+"/api-keys", strings.NewReader(body), "Content-Type", "application/json", "Authorization", "Bearer "+owner.access)
			m := assertAPIError(t, r, 422, "VALIDATION_ERROR")
			assert.Contains(t, m["detail"], field, "body %s", body)
		}
		assertAPIError(t, s.authed("", "POST", authPrefix+"/api-keys", map[string]any{"name": "anon"}), 401, "AUTHENTICATION_REQUIRED")
		assertAPIError(t, s.get(authPrefix+"/api-keys"), 401, "AUTHENTICATION_REQUIRED")

		// Another user's key is not found to a non-admin, and keeps working.
		r = s.authed(other.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil)
		assertAPIError(t, r, 404, "NOT_FOUND")
		assertAPIError(t, s.authed(other.access, "DELETE", authPrefix+"/api-keys/not-a-uuid", nil), 404, "NOT_FOUND")
		require.Equal(t, 200, s.authed(key, "GET", authPrefix+"/api-keys", nil).status)
		// Its owner deletes it: gone at once, and a second delete is 404.
		r = s.authed(owner.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil)
		require.Equal(t, 204, r.status, "%s", r.body)
		assertAPIError(t, s.authed(key, "GET", authPrefix+"/api-keys", nil), 401, "INVALID_API_KEY")
		assertAPIError(t, s.authed(owner.access, "DELETE", authPrefix+"/api-keys/"+keyID, nil), 404, "NOT_FOUND")

		// An admin may delete anyone's key.
		r = s.authed(other.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "other's"})
		require.Equal(t, 201, r.status, "%s", r.body)
		otherKey, otherKeyID := r.json(t)["key"].(string), fmt.Sprint(r.json(t)["id"])
		require.Equal(t, 200, s.authed(otherKey, "GET", "/hello/whoami", nil).status)
		require.Equal(t, 204, s.authed(admin.access, "DELETE", authPrefix+"/api-keys/"+otherKeyID, nil).status)
		assertAPIError(t, s.authed(otherKey, "GET", "/hello/whoami", nil), 401, "INVALID_API_KEY")

		// The short-lived key: refused once expired (waitFor: the expiry is
		// wall-clock), and listed as expired.
		waitFor(t, 30*time.Second, "the short-lived key to expire", func() bool {
			return s.authed(shortKey, "GET", "/hello/whoami", nil).status == 401
		})
		require.False(t, time.Now().Before(expAt), "refused before its expiry")
		r = s.authed(shortKey, "GET", "/hello/whoami", nil)
		m := assertAPIError(t, r, 401, "INVALID_API_KEY")
		assert.Contains(t, m["detail"], "expired")
		r = s.authed(owner.access, "GET", authPrefix+"/api-keys", nil)
		require.Equal(t, 200, r.status)
		var expired map[string]any
		for _, k := range keysByID(t, r) {
			if k["name"] == "short-lived" {
				expired = k
			}
		}
		require.NotNil(t, expired, "%s", r.body)
		assert.Equal(t, true, expired["expired"])
	})

	step("users", func(t *testing.T, s *server) {
		viewer := s.login(regEmail, newPW)
		for i := 0; i < 3; i++ {
			r := s.authed("", "POST", authPrefix+"/register", map[string]string{"email": fmt.Sprintf("page%d@example.com", i), "password": regPW})
			require.Equal(t, 201, r.status, "%s", r.body)
		}

		// Pages: disjoint, in a stable order, adding up to the total.
		all := s.authed(admin.access, "GET", authPrefix+"/users?limit=200", nil)
		require.Equal(t, 200, all.status, "%s", all.body)
		assertNoSecrets(t, all.body, adminPassword)
		total := int(all.json(t)["total"].(float64))
		require.GreaterOrEqual(t, total, 7)
		var seen []string
		for off := 0; off < total; off += 2 {
			r := s.authed(admin.access, "GET", fmt.Sprintf("%s/users?limit=2&offset=%d", authPrefix, off), nil)
			require.Equal(t, 200, r.status, "%s", r.body)
			m := r.json(t)
			assert.EqualValues(t, total, m["total"])
			assert.EqualValues(t, 2, m["limit"])
			assert.EqualValues(t, off, m["offset"])
			users := m["users"].([]any)
			assert.Equal(t, min(2, total-off), len(users))
			for _, u := range users {
				id := u.(map[string]any)["id"].(string)
				assert.NotContains(t, seen, id, "pages overlap")
				seen = append(seen, id)
			}
		}
		assert.Len(t, seen, total)
		r := s.authed(admin.access, "GET", authPrefix+"/users?role=admin", nil)
		require.Equal(t, 200, r.status)
		for _, u := range r.json(t)["users"].([]any) {
			assert.Equal(t, "admin", u.(map[string]any)["role"])
		}
		r = s.authed(admin.access, "GET", authPrefix+"/users?q=page", nil)
		require.Equal(t, 200, r.status)
		assert.EqualValues(t, 3, r.json(t)["total"], "%s", r.body)
		for _, q := range []string{"limit=0", "limit=201", "limit=x", "offset=-1", "role=root"} {
			assertAPIError(t, s.authed(admin.access, "GET", authPrefix+"/users?"+q, nil), 422, "VALIDATION_ERROR")
		}

		// Not for a non-admin, nor anonymous.
		assertAPIError(t, s.authed(viewer.access, "GET", authPrefix+"/users", nil), 403, "INSUFFICIENT_ROLE")
		assertAPIError(t, s.authed(viewer.access, "PATCH", authPrefix+"/users/"+regID, map[string]any{"role": "admin"}), 403, "INSUFFICIENT_ROLE")
		assertAPIError(t, s.authed("", "PATCH", authPrefix+"/users/"+regID, map[string]any{"role": "admin"}), 401, "AUTHENTICATION_REQUIRED")

		patch := func(id string, body any) response {
			return s.authed(admin.access, "PATCH", authPrefix+"/users/"+id, body)
		}
		assertAPIError(t, patch("0190a3b4-0000-7000-8000-000000000000", map[string]any{"role": "engineer"}), 404, "NOT_FOUND")
		m := assertAPIError(t, patch(regID, map[string]any{"role": "superuser"}), 422, "VALIDATION_ERROR")
		assert.Contains(t, m["detail"], "role")
		assertAPIError(t, patch(regID, map[string]any{}), 422, "VALIDATION_ERROR")
		assertAPIError(t, patch(regID, map[string]any{"is_active": true, "disabled": true}), 422, "VALIDATION_ERROR")
		assertAPIError(t, patch(regID, map[string]any{"role": 3}), 422, "VALIDATION_ERROR")
		assertAPIError(t, patch(regID, map[string]any{"password_hash": "x"}), 422, "VALIDATION_ERROR")
		// The admin can neither demote nor disable themselves.
		assertAPIError(t, patch(admin.userID, map[string]any{"role": "operator"}), 409, "CANNOT_MODIFY_SELF")
		assertAPIError(t, patch(admin.userID, map[string]any{"disabled": true}), 409, "CANNOT_MODIFY_SELF")
		assertAPIError(t, patch(admin.userID, map[string]any{"is_active": false}), 409, "CANNOT_MODIFY_SELF")
		r = s.authed(admin.access, "GET", "/hello/whoami", nil)
		require.Equal(t, 200, r.status, "the admin's session survived: %s", r.body)
		assert.Equal(t, []any{"admin"}, r.json(t)["roles"])

		// A role change ends the user's sessions at once; a new login
		// carries the new role.
		require.Equal(t, []any{"viewer"}, s.authed(viewer.access, "GET", "/hello/whoami", nil).json(t)["roles"])
		r = patch(regID, map[string]any{"role": "engineer"})
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, "engineer", r.json(t)["role"])
		assertNoSecrets(t, r.body, newPW)
		assertChallenge(t, s.authed(viewer.access, "GET", "/hello/whoami", nil), "TOKEN_REVOKED")
		assertAPIError(t, s.authed(viewer.access, "GET", authPrefix+"/me", nil), 401, "TOKEN_REVOKED")
		assertAPIError(t, s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": viewer.refresh}), 401, "TOKEN_REVOKED")
		eng := s.login(regEmail, newPW)
		r = s.authed(eng.access, "GET", "/hello/whoami", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, []any{"engineer"}, r.json(t)["roles"])

		// Disabling: the token and the API keys stop at once, login fails.
		r = s.authed(eng.access, "POST", authPrefix+"/api-keys", map[string]any{"name": "before-disable"})
		require.Equal(t, 201, r.status, "%s", r.body)
		key := r.json(t)["key"].(string)
		r = s.authed(key, "GET", "/hello/whoami", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, []any{"engineer"}, r.json(t)["roles"])
		require.Equal(t, 200, s.authed(eng.access, "GET", "/hello/whoami", nil).status)
		r = patch(regID, map[string]any{"disabled": true})
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, false, r.json(t)["is_active"])
		assertChallenge(t, s.authed(eng.access, "GET", "/hello/whoami", nil), "TOKEN_REVOKED")
		assertChallenge(t, s.authed(key, "GET", "/hello/whoami", nil), "INVALID_API_KEY")
		assertAPIError(t, s.authed(key, "GET", authPrefix+"/api-keys", nil), 401, "INVALID_API_KEY")
		assertAPIError(t, s.authed("", "POST", authPrefix+"/login", map[string]string{"email": regEmail, "password": newPW}), 401, "ACCOUNT_DISABLED")
		assertAPIError(t, s.authed("", "POST", authPrefix+"/refresh", map[string]string{"refresh_token": eng.refresh}), 401, "")
		// Enabled again: login works.
		r = patch(regID, map[string]any{"is_active": true})
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, true, r.json(t)["is_active"])
		s.login(regEmail, newPW)
	})
}

// reportingTo is s with its request helpers reporting to t (a subtest).
func (s *server) reportingTo(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// assertAPIError asserts r is an error with the status and (when not empty)
// error code, in the one error shape {"detail","error_code","request_id"},
// whose request_id is the response's X-Request-ID. It returns the body.
func assertAPIError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	assert.Equal(t, status, r.status, "body: %s", r.body)
	var m map[string]any
	if !assert.NoError(t, json.Unmarshal(r.body, &m), "an error body must be JSON: %q", r.body) {
		return map[string]any{}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	assert.Equal(t, []string{"detail", "error_code", "request_id"}, keys, "error shape: %s", r.body)
	detail, _ := m["detail"].(string)
	assert.NotEmpty(t, detail, "%s", r.body)
	ec, _ := m["error_code"].(string)
	assert.Regexp(t, `^[A-Z][A-Z0-9_]*$`, ec, "%s", r.body)
	if code != "" {
		assert.Equal(t, code, ec, "%s", r.body)
	}
	rid, _ := m["request_id"].(string)
	assert.NotEmpty(t, rid, "%s", r.body)
	assert.Equal(t, r.header.Get("X-Request-ID"), rid, "request_id is the response's X-Request-ID")
	return m
}

// assertNoSecrets asserts a body about a user holds no password or hash.
func assertNoSecrets(t *testing.T, body []byte, password string) {
	t.Helper()
	s := string(body)
	assert.NotContains(t, s, password)
	assert.NotContains(t, s, "$2a$")
	assert.NotContains(t, s, "$2b$")
	assert.NotContains(t, strings.ToLower(s), "password")
	assert.NotContains(t, strings.ToLower(s), "hash")
}

// loggedCodes returns the one-time codes the auth module wrote to the log
// (development mode, no SMTP) for email and purpose, oldest first. The
// attributes of a module's log line come in no fixed order.
func loggedCodes(s *server, email, purpose string) []string {
	attr := func(line, key string) string {
		m := regexp.MustCompile(`\b` + key + `=("[^"]*"|\S+)`).FindStringSubmatch(line)
		if m == nil {
			return ""
		}
		return strings.Trim(m[1], `"`)
	}
	var out []string
	for _, line := range strings.Split(s.logText(), "\n") {
		if !strings.Contains(line, "one-time code") {
			continue
		}
		if attr(line, "email") == email && attr(line, "purpose") == purpose {
			if c := attr(line, "code"); regexp.MustCompile(`^\d{6}$`).MatchString(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// waitCode waits for the n-th code logged for email and purpose and returns
// it (the module's log reaches the core's a moment after the request).
func waitCode(t *testing.T, s *server, email, purpose string, n int) string {
	t.Helper()
	var codes []string
	waitFor(t, 15*time.Second, fmt.Sprintf("code %d (%s) for %s in the log", n, purpose, email), func() bool {
		codes = loggedCodes(s, email, purpose)
		return len(codes) >= n
	})
	return codes[n-1]
}

// otherCode is a 6-digit code that is not code.
func otherCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// keysByID decodes a GET /api-keys answer.
func keysByID(t *testing.T, r response) map[string]map[string]any {
	t.Helper()
	var body struct {
		Keys []map[string]any `json:"api_keys"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), "%s", r.body)
	out := map[string]map[string]any{}
	for _, k := range body.Keys {
		out[fmt.Sprint(k["id"])] = k
	}
	return out
}
