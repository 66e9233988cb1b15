package authapp

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
	"github.com/chacc/chacc/sdk/sdktest"
)

// TestMain lets the tests hash with bcrypt's least cost: at the real minimum
// (10) the package would take minutes. Only test code can lower it.
func TestMain(m *testing.M) {
	minBcryptCost = bcrypt.MinCost
	os.Exit(m.Run())
}

// manifestFile is the module's manifest, beside the command.
const manifestFile = "../module_meta.json"

// Accounts the tests use.
const (
	adminEmail    = "root@example.com"
	adminPassword = "Admin-Pass-1"
	password      = "Correct-Horse-1"
)

// clock is a time the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is the module running in-process, with its clock and database.
type env struct {
	t     *testing.T
	h     *sdktest.Harness
	clock *clock
	db    *sdk.Database
	// createdAdmins counts the first-admin creations it logged.
	createdAdmins int
}

// options changes how start configures the module.
type options struct {
	db       *sdk.Database
	settings map[string]string
	mode     string
	clock    *clock
}

// testSettings are the settings every test starts with: a cheap bcrypt and
// a known first admin.
func testSettings() map[string]string {
	return map[string]string{
		"AUTH_BCRYPT_COST":    "4",
		"AUTH_ADMIN_EMAIL":    adminEmail,
		"AUTH_ADMIN_PASSWORD": adminPassword,
	}
}

// start runs the module with its manifest on a fresh SQLite database unless
// o says otherwise; o.settings are added to (or, with "", remove) the test
// settings.
func start(t *testing.T, o options) *env {
	t.Helper()
	settings := testSettings()
	for k, v := range o.settings {
		if v == "" {
			delete(settings, k)
		} else {
			settings[k] = v
		}
	}
	if o.db == nil {
		o.db = sdktest.SQLite(t)
	}
	if o.clock == nil {
		o.clock = newClock()
	}
	h := sdktest.Start(t, NewModule(o.clock.Now), sdktest.Options{
		ManifestFile: manifestFile, Settings: settings, Database: o.db, Mode: o.mode,
	})
	return &env{t: t, h: h, clock: o.clock, db: o.db}
}

// eachDatabase runs test on a fresh SQLite namespace, and on a fresh Postgres
// one when DATABASE_URL is set (required under CHACC_REQUIRE_SERVICES=1).
func eachDatabase(t *testing.T, test func(t *testing.T, db *sdk.Database)) {
	t.Run("sqlite", func(t *testing.T) { test(t, sdktest.SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, sdktest.Postgres(t)) })
}

// do serves one request, a JSON body when body is not a string, and decodes
// a JSON answer into a map (nil for an empty one).
func (e *env) do(method, path string, body any, opts ...sdktest.RequestOption) (*http.Response, map[string]any) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		r = strings.NewReader(string(raw))
	}
	req := httptest.NewRequest(method, prefix+path, r)
	req.Header.Set("Content-Type", "application/json")
	return e.serve(req, opts...)
}

// form posts a form-encoded body.
func (e *env) form(path string, values url.Values) (*http.Response, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, prefix+path, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.serve(req)
}

func (e *env) serve(req *http.Request, opts ...sdktest.RequestOption) (*http.Response, map[string]any) {
	e.t.Helper()
	resp := e.h.Do(req, opts...)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	var got map[string]any
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &got), "body: %s", raw)
	}
	return resp, got
}

// assertError checks an answer in the chacc error shape.
func assertError(t *testing.T, resp *http.Response, got map[string]any, status int, code string) {
	t.Helper()
	assert.Equal(t, status, resp.StatusCode, "body: %v", got)
	assert.Equal(t, code, got["error_code"], "body: %v", got)
	assert.NotEmpty(t, got["detail"])
	assert.NotEmpty(t, got["request_id"])
	assert.Equal(t, resp.Header.Get("X-Request-ID"), got["request_id"])
	assert.Len(t, got, 3, "the error shape has detail, error_code and request_id only")
}

// register makes an account and returns it.
func (e *env) register(email string) map[string]any {
	e.t.Helper()
	resp, got := e.do(http.MethodPost, "/register", map[string]string{"email": email, "password": password, "display_name": "User " + email})
	require.Equal(e.t, http.StatusCreated, resp.StatusCode, "body: %v", got)
	return got
}

// tokens is a login's answer.
type tokens struct {
	Access, Refresh string
	User            map[string]any
}

// login logs in and returns the tokens.
func (e *env) login(name, pw string) tokens {
	e.t.Helper()
	resp, got := e.do(http.MethodPost, "/login", map[string]string{"email": name, "password": pw})
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "body: %v", got)
	return tokensOf(e.t, got)
}

func tokensOf(t *testing.T, got map[string]any) tokens {
	t.Helper()
	tk := tokens{Access: fmt.Sprint(got["access_token"]), Refresh: fmt.Sprint(got["refresh_token"])}
	tk.User, _ = got["user"].(map[string]any)
	require.NotEmpty(t, tk.Access)
	require.NotEmpty(t, tk.Refresh)
	return tk
}

// claims verifies an access token as the core does, with the keys the
// module hands over in Describe, and returns its claims.
func (e *env) claims(token string) (jwt.MapClaims, *jwt.Token) {
	e.t.Helper()
	au := e.h.Describe().GetAuthenticator()
	require.NotNil(e.t, au, "the module describes its authenticator")
	keys := map[string]ed25519.PublicKey{}
	for _, k := range au.GetKeys() {
		require.Equal(e.t, "EdDSA", k.GetAlg())
		pub, err := x509.ParsePKIXPublicKey(k.GetPublicKey())
		require.NoError(e.t, err)
		keys[k.GetKid()] = pub.(ed25519.PublicKey)
	}
	c := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(au.GetIssuer()), jwt.WithAudience(au.GetAudience()),
		jwt.WithTimeFunc(e.clock.Now), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	require.NoError(e.t, err)
	return c, tok
}

// principal is what the core passes the module for a request with the
// access token: its claims as a principal.
func (e *env) principal(token string) sdk.Principal {
	e.t.Helper()
	c, _ := e.claims(token)
	var scopes []string
	for _, s := range c["scopes"].([]any) {
		scopes = append(scopes, s.(string))
	}
	return sdk.Principal{
		Subject: c["sub"].(string), DisplayName: fmt.Sprint(c["name"]), Roles: []string{c["role"].(string)},
		Scopes: scopes, Method: "jwt",
		Attributes: map[string]string{"family": c["fam"].(string), "token_id": c["jti"].(string), "email": fmt.Sprint(c["email"])},
	}
}

// as makes a request come from the holder of the access token.
func (e *env) as(token string) sdktest.RequestOption { return sdktest.AsPrincipal(e.principal(token)) }

// ref names an access token for CheckToken.
func (e *env) ref(token string) sdk.TokenRef {
	e.t.Helper()
	p := e.principal(token)
	return sdk.TokenRef{ID: p.Attributes["token_id"], Family: p.Attributes["family"], Subject: p.Subject}
}

// tokenValid asks the authenticator about the access token, as the core does.
func (e *env) tokenValid(token string) (bool, string) {
	e.t.Helper()
	r, err := e.h.CheckToken(e.t.Context(), e.ref(token))
	require.NoError(e.t, err)
	return r.Valid, r.Reason
}

// code returns the last one-time code the module logged for email and
// purpose (development mode without SMTP writes them to the log), "" if none.
func (e *env) code(email, purpose string) string {
	e.t.Helper()
	logs := e.h.Logs()
	for i := len(logs) - 1; i >= 0; i-- {
		a := logs[i].GetAttrs()
		if strings.HasPrefix(logs[i].GetMessage(), "one-time code") && a["email"] == email && a["purpose"] == purpose {
			return a["code"]
		}
	}
	return ""
}

// codeCount is how many codes the module logged for email and purpose.
func (e *env) codeCount(email, purpose string) int {
	n := 0
	for _, l := range e.h.Logs() {
		a := l.GetAttrs()
		if strings.HasPrefix(l.GetMessage(), "one-time code") && a["email"] == email && a["purpose"] == purpose {
			n++
		}
	}
	return n
}

// logged reports whether a log line's message contains s.
func (e *env) logged(s string) bool {
	for _, l := range e.h.Logs() {
		if strings.Contains(l.GetMessage(), s) {
			return true
		}
	}
	return false
}

// openDB opens the module's database beside it, to look at what it stores.
func (e *env) openDB() *gorm.DB {
	e.t.Helper()
	db, err := sdkdb.Open(*e.db)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { sdkdb.Close(db) })
	return db
}

// apiKeyPrincipal is what the core passes for an API key.
func (e *env) apiKeyPrincipal(key string) sdk.Principal {
	e.t.Helper()
	r, err := e.h.AuthenticateAPIKey(e.t.Context(), key)
	require.NoError(e.t, err)
	require.True(e.t, r.Valid, r.Reason)
	return *r.Principal
}

// lastInvalidation returns the module's last InvalidateCredentials call.
func (e *env) lastInvalidation() sdk.Invalidation {
	e.t.Helper()
	inv := e.h.Invalidations()
	require.NotEmpty(e.t, inv)
	return inv[len(inv)-1]
}

// with returns m plus the pairs kv.
func with(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
