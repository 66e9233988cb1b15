package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// fakeBackend is an authenticator module: revoked families, known API keys.
type fakeBackend struct {
	describe *modulev1.DescribeResponse

	mu      sync.Mutex
	revoked map[string]bool
	keys    map[string]*modulev1.AuthenticateResponse
	calls   int
	fail    error
	// during runs inside Authenticate, before it answers.
	during func()
}

func (b *fakeBackend) Describe() *modulev1.DescribeResponse { return b.describe }

func (b *fakeBackend) Authenticate(_ context.Context, req *modulev1.AuthenticateRequest) (*modulev1.AuthenticateResponse, error) {
	b.mu.Lock()
	b.calls++
	fail, during := b.fail, b.during
	if fail != nil {
		b.mu.Unlock()
		return nil, fail
	}
	resp := &modulev1.AuthenticateResponse{Valid: true}
	if k := req.GetApiKey(); k != "" {
		resp = &modulev1.AuthenticateResponse{Valid: false, Reason: "unknown key"}
		if r, ok := b.keys[k]; ok {
			resp = r
		}
	} else if b.revoked[req.GetToken().GetFamily()] {
		resp = &modulev1.AuthenticateResponse{Valid: false, Reason: "logged out"}
	}
	b.mu.Unlock()
	if during != nil {
		during() // the answer is decided, not yet delivered
	}
	return resp, nil
}

func (b *fakeBackend) callCount() int { b.mu.Lock(); defer b.mu.Unlock(); return b.calls }

type fakeSource struct {
	mu      sync.Mutex
	backend Backend
	enabled bool
	known   bool
	loaded  chan struct{}
}

func (s *fakeSource) Loaded() <-chan struct{} { return s.loaded }

func (s *fakeSource) Authenticator() (string, Backend, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "auth", s.backend, s.enabled, s.known
}

type fixture struct {
	priv    ed25519.PrivateKey
	backend *fakeBackend
	src     *fakeSource
	a       *Authority
	now     time.Time
}

func newFixture(t testing.TB) *fixture {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	f := &fixture{priv: priv, now: time.Now()}
	f.backend = &fakeBackend{
		describe: &modulev1.DescribeResponse{Authenticator: &modulev1.Authenticator{
			Keys: []*modulev1.VerificationKey{{Kid: "k1", Alg: "EdDSA", PublicKey: der}}, Issuer: "chacc-auth", Audience: "chacc",
		}},
		revoked: map[string]bool{}, keys: map[string]*modulev1.AuthenticateResponse{},
	}
	f.src = &fakeSource{backend: f.backend, enabled: true, known: true}
	f.a = New(f.src, Config{CacheTTL: time.Minute, Now: func() time.Time { return f.now }})
	return f
}

func (f *fixture) claims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "u1", "role": "operator", "scopes": []string{}, "fam": "fam1", "jti": "t1", "name": "Ada",
		"iss": "chacc-auth", "aud": "chacc",
		"iat": f.now.Unix(), "nbf": f.now.Unix(), "exp": f.now.Add(15 * time.Minute).Unix(),
	}
}

func (f *fixture) sign(t testing.TB, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(f.priv)
	require.NoError(t, err)
	return s
}

func errorCode(err error) string {
	var ce *core.Error
	if errors.As(err, &ce) {
		return ce.ErrorCode
	}
	return ""
}

func TestValidToken(t *testing.T) {
	f := newFixture(t)
	tok := f.sign(t, f.claims())
	p, err := f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	require.NoError(t, err)
	assert.Equal(t, "u1", p.GetSubject())
	assert.Equal(t, []string{"operator"}, p.GetRoles())
	assert.Equal(t, "jwt", p.GetMethod())
	assert.Equal(t, "Ada", p.GetDisplayName())
	assert.Equal(t, "fam1", p.GetAttributes()["family"])
	assert.Equal(t, "t1", p.GetAttributes()["token_id"])

	// The family answer is cached: a second request asks the module nothing.
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	require.NoError(t, err)
	assert.Equal(t, 1, f.backend.callCount())
	// After the TTL it asks again.
	f.now = f.now.Add(2 * time.Minute)
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	require.NoError(t, err)
	assert.Equal(t, 2, f.backend.callCount())
}

func TestAttacks(t *testing.T) {
	f := newFixture(t)
	pubDER := f.backend.describe.GetAuthenticator().GetKeys()[0].GetPublicKey()
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString

	good := f.sign(t, f.claims())
	parts := strings.Split(good, ".")

	cases := map[string]func() string{
		"alg none": func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			require.NoError(t, err)
			return s
		},
		"HS256 signed with the public key": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims())
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(pubDER)
			require.NoError(t, err)
			return s
		},
		"HS256 without kid": func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims()).SignedString(pubDER)
			require.NoError(t, err)
			return s
		},
		"RS256 with a key of its own": func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, f.claims()).SignedString(rsaKey)
			require.NoError(t, err)
			return s
		},
		"signed by another key": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, f.claims())
			tok.Header["kid"] = "k1"
			s, err := tok.SignedString(otherPriv)
			require.NoError(t, err)
			return s
		},
		"signed by another key, no kid": func() string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, f.claims()).SignedString(otherPriv)
			require.NoError(t, err)
			return s
		},
		"unknown kid": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, f.claims())
			tok.Header["kid"] = "k9"
			s, err := tok.SignedString(f.priv)
			require.NoError(t, err)
			return s
		},
		"expired": func() string {
			c := f.claims()
			c["exp"] = f.now.Add(-time.Minute).Unix()
			return f.sign(t, c)
		},
		"not yet valid": func() string {
			c := f.claims()
			c["nbf"] = f.now.Add(time.Hour).Unix()
			return f.sign(t, c)
		},
		"no expiry": func() string {
			c := f.claims()
			delete(c, "exp")
			return f.sign(t, c)
		},
		"tampered payload (role admin)": func() string {
			c := f.claims()
			c["role"] = "admin"
			claims, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SigningString()
			return strings.Split(claims, ".")[0][:0] + parts[0] + "." + strings.Split(claims, ".")[1] + "." + parts[2]
		},
		"tampered signature": func() string { return parts[0] + "." + parts[1] + "." + b64([]byte("nope")) },
		"wrong issuer": func() string {
			c := f.claims()
			c["iss"] = "someone-else"
			return f.sign(t, c)
		},
		"wrong audience": func() string {
			c := f.claims()
			c["aud"] = "other"
			return f.sign(t, c)
		},
		"no family": func() string {
			c := f.claims()
			delete(c, "fam")
			return f.sign(t, c)
		},
		"unknown role": func() string {
			c := f.claims()
			c["role"] = "root"
			return f.sign(t, c)
		},
		"garbage":   func() string { return "not.a.jwt" },
		"malformed": func() string { return "\x00malformed" },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.a.Authenticate(t.Context(), Credential{Bearer: mk()})
			require.Error(t, err)
			assert.Equal(t, core.EUNAUTHORIZED, core.ErrorCode(err), "%v", err)
			assert.Equal(t, "INVALID_TOKEN", errorCode(err))
		})
	}
	// None of them reached the module.
	assert.Equal(t, 0, f.backend.callCount())
}

func TestRevocation(t *testing.T) {
	f := newFixture(t)
	tok := f.sign(t, f.claims())
	_, err := f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	require.NoError(t, err)

	// The module revokes the family (logout) and invalidates: the next
	// request fails at once, cache TTL notwithstanding.
	f.backend.mu.Lock()
	f.backend.revoked["fam1"] = true
	f.backend.mu.Unlock()
	f.a.Invalidate([]string{"fam1"}, nil, nil)
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	assert.Equal(t, "TOKEN_REVOKED", errorCode(err))

	// Invalidation by subject drops the user's families too.
	c := f.claims()
	c["fam"], c["jti"] = "fam2", "t2"
	tok2 := f.sign(t, c)
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok2})
	require.NoError(t, err)
	f.backend.mu.Lock()
	f.backend.revoked["fam2"] = true
	f.backend.mu.Unlock()
	f.a.Invalidate(nil, []string{"u1"}, nil)
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok2})
	assert.Equal(t, "TOKEN_REVOKED", errorCode(err))
}

// An answer fetched before an invalidation must not be cached after it: the
// module said "valid", then revoked and invalidated while the answer was on
// its way.
func TestInvalidationRace(t *testing.T) {
	f := newFixture(t)
	tok := f.sign(t, f.claims())
	f.backend.during = func() {
		f.backend.mu.Lock()
		f.backend.revoked["fam1"] = true
		f.backend.during = nil
		f.backend.mu.Unlock()
		f.a.Invalidate([]string{"fam1"}, nil, nil)
	}
	_, err := f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	require.NoError(t, err) // the answer predates the revocation
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	assert.Equal(t, "TOKEN_REVOKED", errorCode(err))
}

func TestAPIKeys(t *testing.T) {
	f := newFixture(t)
	f.backend.keys["rak_good"] = &modulev1.AuthenticateResponse{Valid: true, Principal: &modulev1.Principal{
		Subject: "u2", Roles: []string{"viewer"}, Scopes: []string{"outages:read"}, Attributes: map[string]string{"api_key_id": "key1"},
	}}
	p, err := f.a.Authenticate(t.Context(), Credential{APIKey: "rak_good"})
	require.NoError(t, err)
	assert.Equal(t, "u2", p.GetSubject())
	assert.Equal(t, "api_key", p.GetMethod(), "the core sets the method, whatever the module says")
	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_good"})
	require.NoError(t, err)
	assert.Equal(t, 1, f.backend.callCount(), "cached")

	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_bad"})
	assert.Equal(t, "INVALID_API_KEY", errorCode(err))

	// Deleted: invalidated by key id.
	f.backend.mu.Lock()
	delete(f.backend.keys, "rak_good")
	f.backend.mu.Unlock()
	f.a.Invalidate(nil, nil, []string{"key1"})
	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_good"})
	assert.Equal(t, "INVALID_API_KEY", errorCode(err))

	// A key's answer is not cached past its expiry.
	f.backend.keys["rak_short"] = &modulev1.AuthenticateResponse{Valid: true, ExpiresUnix: f.now.Add(10 * time.Second).Unix(),
		Principal: &modulev1.Principal{Subject: "u3", Roles: []string{"viewer"}}}
	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_short"})
	require.NoError(t, err)
	f.backend.mu.Lock()
	delete(f.backend.keys, "rak_short")
	f.backend.mu.Unlock()
	f.now = f.now.Add(11 * time.Second)
	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_short"})
	assert.Equal(t, "INVALID_API_KEY", errorCode(err))
}

func TestAuthenticatorStates(t *testing.T) {
	f := newFixture(t)
	tok := f.sign(t, f.claims())

	// While the core loads its modules, a request waits; one whose context
	// ends first gets 503.
	f.src.known, f.src.loaded = false, make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := f.a.Required(ctx)
	assert.Equal(t, "STARTING", errorCode(err))
	_, err = f.a.Authenticate(ctx, Credential{Bearer: tok})
	assert.Equal(t, core.EUNAVAILABLE, core.ErrorCode(err))
	go func() {
		f.src.mu.Lock()
		f.src.known = true
		f.src.mu.Unlock()
		close(f.src.loaded)
	}()
	required, err := f.a.Required(t.Context())
	require.NoError(t, err)
	assert.True(t, required, "answered once loaded")

	f.src.known, f.src.enabled = true, false
	required, err = f.a.Required(t.Context())
	require.NoError(t, err)
	assert.False(t, required)

	// Enabled but down: tokens cannot be checked, so they are refused with
	// 503 (fail closed), never let in.
	f.src.enabled, f.src.backend = true, nil
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	assert.Equal(t, "AUTHENTICATOR_UNAVAILABLE", errorCode(err))
	_, err = f.a.Authenticate(t.Context(), Credential{APIKey: "rak_x"})
	assert.Equal(t, "AUTHENTICATOR_UNAVAILABLE", errorCode(err))

	// Running but failing: 503 too.
	f.src.backend = f.backend
	f.backend.fail = errors.New("boom")
	_, err = f.a.Authenticate(t.Context(), Credential{Bearer: tok})
	assert.Equal(t, "AUTHENTICATOR_UNAVAILABLE", errorCode(err))

	_, err = f.a.Authenticate(t.Context(), Credential{})
	assert.Equal(t, "AUTHENTICATION_REQUIRED", errorCode(err))
}

func TestUnusableKeys(t *testing.T) {
	f := newFixture(t)
	f.backend.describe = &modulev1.DescribeResponse{Authenticator: &modulev1.Authenticator{
		Keys: []*modulev1.VerificationKey{{Kid: "k1", Alg: "HS256", PublicKey: []byte("secret")}},
	}}
	_, err := f.a.Authenticate(t.Context(), Credential{Bearer: f.sign(t, f.claims())})
	assert.Equal(t, "AUTHENTICATOR_MISCONFIGURED", errorCode(err))
}

func TestAuthorize(t *testing.T) {
	user := func(role string) *modulev1.Principal {
		return &modulev1.Principal{Subject: "u", Roles: []string{role}, Method: "jwt"}
	}
	roles := []string{"viewer", "engineer", "operator", "admin"}
	for i, have := range roles {
		for j, need := range roles {
			err := Authorize(user(have), need, nil)
			if i >= j {
				assert.NoError(t, err, "%s on a %s route", have, need)
			} else {
				assert.Equal(t, "INSUFFICIENT_ROLE", errorCode(err), "%s on a %s route", have, need)
			}
		}
	}
	assert.NoError(t, Authorize(nil, "", nil), "no requirement, anonymous")
	assert.Equal(t, "AUTHENTICATION_REQUIRED", errorCode(Authorize(nil, "viewer", nil)))

	key := &modulev1.Principal{Subject: "u", Roles: []string{"admin"}, Scopes: []string{"outages:read"}, Method: "api_key"}
	assert.NoError(t, Authorize(key, "viewer", []string{"outages:read"}))
	assert.Equal(t, "INSUFFICIENT_SCOPE", errorCode(Authorize(key, "viewer", []string{"outages:write"})))
	wild := &modulev1.Principal{Subject: "u", Roles: []string{"viewer"}, Scopes: []string{"outages:*"}, Method: "api_key"}
	assert.NoError(t, Authorize(wild, "", []string{"outages:write"}))
	assert.Equal(t, "INSUFFICIENT_SCOPE", errorCode(Authorize(wild, "", []string{"sla:read"})))
	noScopes := &modulev1.Principal{Subject: "u", Roles: []string{"admin"}, Method: "api_key"}
	assert.Equal(t, "INSUFFICIENT_SCOPE", errorCode(Authorize(noScopes, "", []string{"sla:read"})), "a key with no scopes gets none")
	// A login token (empty scopes) is governed by its role; a scoped token
	// by its scopes.
	assert.NoError(t, Authorize(user("viewer"), "viewer", []string{"outages:write"}))
	scoped := &modulev1.Principal{Subject: "u", Roles: []string{"admin"}, Scopes: []string{"sla:read"}, Method: "jwt"}
	assert.Equal(t, "INSUFFICIENT_SCOPE", errorCode(Authorize(scoped, "", []string{"outages:write"})))
}

func TestCredentialFrom(t *testing.T) {
	h := map[string][]string{"Authorization": {"Bearer abc"}}
	c, ok := CredentialFrom(h)
	assert.True(t, ok)
	assert.Equal(t, "abc", c.Bearer)
	c, ok = CredentialFrom(map[string][]string{"Authorization": {"bearer  abc "}, "X-Api-Key": {"rak_1"}})
	assert.True(t, ok)
	assert.Equal(t, "rak_1", c.APIKey, "an API key wins")
	c, ok = CredentialFrom(map[string][]string{"Authorization": {"Basic dTpw"}})
	assert.True(t, ok)
	assert.NotEmpty(t, c.Bearer, "a non-bearer scheme is a bad credential, not none")
	_, ok = CredentialFrom(map[string][]string{})
	assert.False(t, ok)
}

// BenchmarkAuthenticate is the core's per-request check of an access token:
// cached (the steady state: verified once, family answer cached) and
// uncached (signature verified every time).
func BenchmarkAuthenticate(b *testing.B) {
	b.Run("cached", func(b *testing.B) {
		f := newFixture(b)
		f.a.cfg.Now = time.Now
		tok := f.sign(b, f.claims())
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.a.Authenticate(ctx, Credential{Bearer: tok}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		f := newFixture(b)
		f.a.cfg.Now = time.Now
		tok := f.sign(b, f.claims())
		kr := f.a.keyringFor(f.backend)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kr.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
