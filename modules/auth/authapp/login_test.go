package authapp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
)

func TestLogin(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		resp, got := e.do(http.MethodPost, "/register", map[string]string{"email": "a@example.com", "password": password, "username": "alice"})
		require.Equal(t, http.StatusCreated, resp.StatusCode)
		id := got["id"]

		t.Run("by email", func(t *testing.T) {
			resp, got := e.do(http.MethodPost, "/login", map[string]string{"email": "A@Example.com", "password": password})
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, "bearer", got["token_type"])
			assert.Equal(t, 900.0, got["expires_in"])
			assert.Equal(t, id, got["user"].(map[string]any)["id"])
			assert.NotNil(t, got["user"].(map[string]any)["last_login_at"])
			tk := tokensOf(t, got)
			assert.NotEqual(t, tk.Access, tk.Refresh)
		})
		t.Run("by username", func(t *testing.T) {
			resp, got := e.do(http.MethodPost, "/login", map[string]string{"username": "Alice", "password": password})
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, id, got["user"].(map[string]any)["id"])
		})
		t.Run("token, OAuth2 password grant form", func(t *testing.T) {
			resp, got := e.form("/token", url.Values{"grant_type": {"password"}, "username": {"a@example.com"}, "password": {password}})
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			assert.Equal(t, "bearer", got["token_type"])
			tokensOf(t, got)
		})
		t.Run("token, JSON", func(t *testing.T) {
			resp, got := e.do(http.MethodPost, "/token", map[string]string{"username": "alice", "password": password, "grant_type": "password", "client_id": "cli"})
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
			tokensOf(t, got)
		})

		tests := []struct {
			name   string
			path   string
			body   any
			status int
			code   string
		}{
			{"wrong password", "/login", map[string]string{"email": "a@example.com", "password": "Wrong-Pass-1"}, 401, "INVALID_CREDENTIALS"},
			{"unknown email", "/login", map[string]string{"email": "nobody@example.com", "password": password}, 401, "INVALID_CREDENTIALS"},
			{"unknown username", "/token", map[string]string{"username": "nobody", "password": password}, 401, "INVALID_CREDENTIALS"},
			{"no password", "/login", map[string]string{"email": "a@example.com"}, 422, "VALIDATION_ERROR"},
			{"no name", "/login", map[string]string{"password": password}, 422, "VALIDATION_ERROR"},
			{"other grant type", "/token", map[string]string{"grant_type": "client_credentials", "username": "alice", "password": password}, 400, "UNSUPPORTED_GRANT_TYPE"},
			{"bad JSON", "/login", `{"email":`, 400, "INVALID_JSON"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, got := e.do(http.MethodPost, tc.path, tc.body)
				assertError(t, resp, got, tc.status, tc.code)
				if tc.status == http.StatusUnauthorized {
					assert.Equal(t, "Invalid email or password", got["detail"], "no hint whether the account exists")
					assert.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
		t.Run("form with another grant type", func(t *testing.T) {
			resp, got := e.form("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
			assertError(t, resp, got, http.StatusBadRequest, "UNSUPPORTED_GRANT_TYPE")
		})

		t.Run("disabled user", func(t *testing.T) {
			admin := e.login(adminEmail, adminPassword)
			resp, _ := e.do(http.MethodPatch, "/users/"+id.(string), map[string]any{"disabled": true}, e.as(admin.Access))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			resp, got := e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": password})
			assertError(t, resp, got, http.StatusUnauthorized, "ACCOUNT_DISABLED")
			// A wrong password says nothing more.
			resp, got = e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": "Wrong-Pass-1"})
			assertError(t, resp, got, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		})
	})
}

func TestLoginMayRequireAVerifiedEmail(t *testing.T) {
	e := start(t, options{settings: map[string]string{"AUTH_REQUIRE_VERIFIED_EMAIL": "true"}})
	e.register("a@example.com")
	resp, got := e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": password})
	assertError(t, resp, got, http.StatusForbidden, "EMAIL_NOT_VERIFIED")

	resp, _ = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": e.code("a@example.com", purposeVerifyEmail)})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e.login("a@example.com", password)
}

func TestLockout(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		fail := func() (*http.Response, map[string]any) {
			return e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": "Wrong-Pass-1"})
		}
		right := func() (*http.Response, map[string]any) {
			return e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": password})
		}

		// A success resets the count.
		for range 4 {
			resp, got := fail()
			assertError(t, resp, got, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		}
		resp, _ := right()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		for range 4 {
			resp, got := fail()
			assertError(t, resp, got, http.StatusUnauthorized, "INVALID_CREDENTIALS")
		}
		resp, got := fail() // the fifth in a row
		assertError(t, resp, got, http.StatusUnauthorized, "ACCOUNT_LOCKED")

		// Even the right password is refused while locked.
		e.clock.Advance(14 * time.Minute)
		resp, got = right()
		assertError(t, resp, got, http.StatusUnauthorized, "ACCOUNT_LOCKED")
		assert.Contains(t, got["detail"], "locked")
		assert.Equal(t, "60", resp.Header.Get("Retry-After"))

		e.clock.Advance(time.Minute)
		resp, got = right()
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)

		// The count started again.
		resp, got = fail()
		assertError(t, resp, got, http.StatusUnauthorized, "INVALID_CREDENTIALS")
	})
}

func TestLockoutSettings(t *testing.T) {
	e := start(t, options{settings: map[string]string{"AUTH_MAX_FAILED_LOGINS": "2", "AUTH_LOCKOUT_MINUTES": "1"}})
	e.register("a@example.com")
	for _, want := range []string{"INVALID_CREDENTIALS", "ACCOUNT_LOCKED", "ACCOUNT_LOCKED"} {
		resp, got := e.do(http.MethodPost, "/login", map[string]string{"email": "a@example.com", "password": "Wrong-Pass-1"})
		assertError(t, resp, got, http.StatusUnauthorized, want)
	}
	e.clock.Advance(time.Minute)
	e.login("a@example.com", password)
}

func TestAccessToken(t *testing.T) {
	e := start(t, options{settings: map[string]string{"AUTH_ACCESS_TOKEN_TTL": "20m", "AUTH_JWT_ISSUER": "iss-x", "AUTH_JWT_AUDIENCE": "aud-y"}})
	resp, got := e.do(http.MethodPost, "/register", map[string]string{"email": "a@example.com", "password": password, "display_name": "Alice"})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	tk := e.login("a@example.com", password)

	// The core's check: the key from VerificationKeys, EdDSA only.
	c, tok := e.claims(tk.Access)
	au := e.h.Describe().GetAuthenticator()
	assert.Equal(t, "iss-x", au.GetIssuer())
	assert.Equal(t, "aud-y", au.GetAudience())
	require.Len(t, au.GetKeys(), 1)
	assert.Equal(t, au.GetKeys()[0].GetKid(), tok.Header["kid"])
	assert.Equal(t, "EdDSA", tok.Header["alg"])

	assert.Equal(t, got["id"], c["sub"])
	assert.Equal(t, "viewer", c["role"])
	assert.Equal(t, []any{}, c["scopes"], "login tokens carry no scopes")
	assert.NotEmpty(t, c["fam"])
	assert.NotEmpty(t, c["jti"])
	assert.Equal(t, "Alice", c["name"])
	assert.Equal(t, "a@example.com", c["email"])
	assert.Equal(t, "iss-x", c["iss"])
	iat, nbf, exp := c["iat"].(float64), c["nbf"].(float64), c["exp"].(float64)
	assert.Equal(t, float64(e.clock.Now().Unix()), iat)
	assert.Equal(t, iat, nbf)
	assert.Equal(t, iat+1200, exp)

	// A changed payload, or another algorithm, does not verify.
	parts := strings.Split(tk.Access, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	payload = []byte(strings.Replace(string(payload), `"role":"viewer"`, `"role":"admin"`, 1))
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	_, err = jwt.Parse(forged, func(*jwt.Token) (any, error) { return e.signerKey(), nil }, jwt.WithValidMethods([]string{"EdDSA"}))
	assert.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
	_, err = jwt.Parse(tk.Access, func(*jwt.Token) (any, error) { return e.signerKey(), nil }, jwt.WithValidMethods([]string{"RS256"}))
	assert.Error(t, err)

	// Each login is its own family; the token expires with its TTL.
	other := e.login("a@example.com", password)
	c2, _ := e.claims(other.Access)
	assert.NotEqual(t, c["fam"], c2["fam"])
	assert.NotEqual(t, c["jti"], c2["jti"])
	e.clock.Advance(21 * time.Minute)
	_, err = jwt.Parse(tk.Access, func(*jwt.Token) (any, error) { return e.signerKey(), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(e.clock.Now))
	assert.ErrorIs(t, err, jwt.ErrTokenExpired)
}

// signerKey is the module's public key from Describe.
func (e *env) signerKey() ed25519.PublicKey {
	e.t.Helper()
	pub, err := x509.ParsePKIXPublicKey(e.h.Describe().GetAuthenticator().GetKeys()[0].GetPublicKey())
	require.NoError(e.t, err)
	return pub.(ed25519.PublicKey)
}

func TestSigningKey(t *testing.T) {
	t.Run("generated once, shared through the database", func(t *testing.T) {
		eachDatabase(t, func(t *testing.T, db *sdk.Database) {
			a := start(t, options{db: db})
			b := start(t, options{db: db})
			assert.Equal(t, a.signerKey(), b.signerKey())
			assert.Equal(t, a.h.Describe().GetAuthenticator().GetKeys()[0].GetKid(), b.h.Describe().GetAuthenticator().GetKeys()[0].GetKid())
			// A token from one process verifies with the other's key.
			tk := a.login(adminEmail, adminPassword)
			b.claims(tk.Access)
		})
	})
	t.Run("configured", func(t *testing.T) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		require.NoError(t, err)
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		e := start(t, options{settings: map[string]string{"AUTH_JWT_PRIVATE_KEY": keyPEM}})
		assert.Equal(t, priv.Public(), e.signerKey())
		tk := e.login(adminEmail, adminPassword)
		_, err = jwt.Parse(tk.Access, func(*jwt.Token) (any, error) { return priv.Public(), nil }, jwt.WithValidMethods([]string{"EdDSA"}))
		assert.NoError(t, err)
		for _, l := range e.h.Logs() {
			assert.NotContains(t, l.GetMessage(), "PRIVATE KEY")
			for _, v := range l.GetAttrs() {
				assert.NotContains(t, v, "PRIVATE KEY")
			}
		}
	})
}
