package authapp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
)

func TestEveryDeclaredRouteIsServed(t *testing.T) {
	var served []string
	for _, r := range (&api{}).handler().(*echo.Echo).Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	declared := routes(&sdk.RateLimit{})
	for _, r := range declared {
		assert.Contains(t, served, r.Method+" "+r.Path)
	}
	assert.Len(t, served, len(declared))
}

func TestRoutesDeclareRolesAndTheLoginLimit(t *testing.T) {
	check := func(t *testing.T, e *env, requests, seconds uint32) {
		t.Helper()
		limited := map[string]bool{}
		for _, r := range e.h.Routes() {
			key := r.GetMethod() + " " + r.GetPath()
			if rl := r.GetRateLimit(); rl != nil {
				limited[key] = true
				assert.Equal(t, requests, rl.GetRequests(), key)
				assert.Equal(t, seconds, rl.GetPeriodSeconds(), key)
				assert.Equal(t, "auth-login", rl.GetKey(), key)
			}
			switch {
			case strings.HasPrefix(r.GetPath(), prefix+"/users"):
				assert.Equal(t, "admin", r.GetMinRole(), key)
			case r.GetPath() == prefix+"/me", r.GetPath() == prefix+"/logout", strings.HasPrefix(r.GetPath(), prefix+"/api-keys"):
				assert.Equal(t, "viewer", r.GetMinRole(), key)
			default:
				assert.Empty(t, r.GetMinRole(), key)
			}
		}
		assert.Equal(t, map[string]bool{
			"POST " + prefix + "/login": true, "POST " + prefix + "/token": true,
			"POST " + prefix + "/refresh": true, "POST " + prefix + "/register": true,
		}, limited)
	}
	t.Run("default", func(t *testing.T) { check(t, start(t, options{}), 10, 300) })
	t.Run("from the setting", func(t *testing.T) {
		check(t, start(t, options{settings: map[string]string{"AUTH_LOGIN_RATE_LIMIT": "3/2m"}}), 3, 120)
	})
}

func TestManifest(t *testing.T) {
	e := start(t, options{})
	m := e.h.Manifest()
	assert.Equal(t, "auth", m.Name)
	assert.Equal(t, "Auth", m.DisplayName)
	assert.Equal(t, "1.0.0", m.Version)
	assert.Equal(t, prefix, m.BasePathPrefix)
	assert.Equal(t, []string{"authenticator"}, m.Capabilities)
	// Every setting the module reads is documented.
	for _, name := range []string{
		"AUTH_ALLOW_REGISTRATION", "AUTH_REQUIRE_VERIFIED_EMAIL", "AUTH_BCRYPT_COST", "AUTH_MAX_FAILED_LOGINS",
		"AUTH_LOCKOUT_MINUTES", "AUTH_LOGIN_RATE_LIMIT", "AUTH_ACCESS_TOKEN_TTL", "AUTH_REFRESH_TOKEN_TTL",
		"AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE", "AUTH_JWT_PRIVATE_KEY", "AUTH_JWT_PRIVATE_KEY_FILE",
		"AUTH_ADMIN_EMAIL", "AUTH_ADMIN_PASSWORD", "AUTH_SMTP_HOST", "AUTH_SMTP_PORT", "AUTH_SMTP_USERNAME",
		"AUTH_SMTP_PASSWORD", "AUTH_SMTP_FROM",
	} {
		assert.Contains(t, m.Config, name)
	}
	assert.True(t, m.Config["AUTH_JWT_PRIVATE_KEY"].Secret)
	assert.True(t, m.Config["AUTH_ADMIN_PASSWORD"].Secret)
}

func TestConfig(t *testing.T) {
	// The real floor of the bcrypt cost, which TestMain lowers.
	saved := minBcryptCost
	minBcryptCost = 10
	defer func() { minBcryptCost = saved }()

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	t.Run("defaults", func(t *testing.T) {
		cfg, err := loadConfig(func(string) string { return "" })
		require.NoError(t, err)
		assert.True(t, cfg.AllowRegistration)
		assert.False(t, cfg.RequireVerifiedEmail)
		assert.Equal(t, 12, cfg.BcryptCost)
		assert.Equal(t, 5, cfg.MaxFailedLogins)
		assert.Equal(t, 15*time.Minute, cfg.Lockout)
		assert.Equal(t, rateLimit{10, 5 * time.Minute}, cfg.LoginLimit)
		assert.Equal(t, 15*time.Minute, cfg.AccessTTL)
		assert.Equal(t, 7*24*time.Hour, cfg.RefreshTTL)
		assert.Equal(t, "chacc-auth", cfg.Issuer)
		assert.Equal(t, "chacc", cfg.Audience)
		assert.Nil(t, cfg.PrivateKey)
	})

	t.Run("valid", func(t *testing.T) {
		settings := map[string]string{
			"AUTH_ALLOW_REGISTRATION": "false", "AUTH_BCRYPT_COST": "10", "AUTH_LOGIN_RATE_LIMIT": "100/1h",
			"AUTH_ACCESS_TOKEN_TTL": "1m", "AUTH_REFRESH_TOKEN_TTL": "30d", "AUTH_SMTP_HOST": "mail.example.com",
			// An environment variable with "\n" escapes.
			"AUTH_JWT_PRIVATE_KEY": strings.ReplaceAll(keyPEM, "\n", `\n`),
		}
		cfg, err := loadConfig(func(k string) string { return settings[k] })
		require.NoError(t, err)
		assert.False(t, cfg.AllowRegistration)
		assert.Equal(t, 10, cfg.BcryptCost)
		assert.Equal(t, rateLimit{100, time.Hour}, cfg.LoginLimit)
		assert.Equal(t, time.Minute, cfg.AccessTTL)
		assert.Equal(t, 30*24*time.Hour, cfg.RefreshTTL)
		assert.Equal(t, 587, cfg.SMTP.Port)
		assert.Equal(t, "no-reply@mail.example.com", cfg.SMTP.From)
		assert.Equal(t, priv, cfg.PrivateKey)
	})

	tests := []struct {
		name, setting, value string
		also                 map[string]string
	}{
		{"bcrypt cost below 10", "AUTH_BCRYPT_COST", "9", nil},
		{"bcrypt cost above 16", "AUTH_BCRYPT_COST", "17", nil},
		{"bool", "AUTH_ALLOW_REGISTRATION", "maybe", nil},
		{"rate limit format", "AUTH_LOGIN_RATE_LIMIT", "ten per minute", nil},
		{"rate limit zero", "AUTH_LOGIN_RATE_LIMIT", "0/5m", nil},
		{"rate limit sub-second", "AUTH_LOGIN_RATE_LIMIT", "10/1500ms", nil},
		{"access TTL too long", "AUTH_ACCESS_TOKEN_TTL", "2h", nil},
		{"access TTL too short", "AUTH_ACCESS_TOKEN_TTL", "30s", nil},
		{"refresh TTL", "AUTH_REFRESH_TOKEN_TTL", "1y", nil},
		{"lockout", "AUTH_LOCKOUT_MINUTES", "0", nil},
		{"max failed logins", "AUTH_MAX_FAILED_LOGINS", "-1", nil},
		{"key not PEM", "AUTH_JWT_PRIVATE_KEY", "secret", nil},
		{"both keys", "AUTH_JWT_PRIVATE_KEY_FILE", "/nonexistent", map[string]string{"AUTH_JWT_PRIVATE_KEY": keyPEM}},
		{"key file missing", "AUTH_JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem", nil},
		{"admin email without password", "AUTH_ADMIN_EMAIL", "a@example.com", nil},
		{"admin password weak", "AUTH_ADMIN_PASSWORD", "lowercase1", map[string]string{"AUTH_ADMIN_EMAIL": "a@example.com"}},
		{"admin email invalid", "AUTH_ADMIN_EMAIL", "not an email", map[string]string{"AUTH_ADMIN_PASSWORD": adminPassword}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			settings := with(tc.also, tc.setting, tc.value)
			_, err := loadConfig(func(k string) string { return settings[k] })
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.setting, "the error names the setting")
			if tc.setting == "AUTH_JWT_PRIVATE_KEY" || tc.setting == "AUTH_ADMIN_PASSWORD" {
				assert.NotContains(t, err.Error(), tc.value, "the error does not quote a secret")
			}
		})
	}
	t.Run("a key that is not Ed25519", func(t *testing.T) {
		_, err := parsePrivateKey([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
		assert.Error(t, err)
	})
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		pw      string
		missing []string
	}{
		{"Abcdef1!", nil},
		{"Äbcdéf1 ", nil},
		{"Ab1!", []string{"at least 8 characters"}},
		{"abcdefg1!", []string{"an upper-case letter"}},
		{"ABCDEFG1!", []string{"a lower-case letter"}},
		{"Abcdefgh!", []string{"a digit"}},
		{"Abcdefgh1", []string{"a special character"}},
		{"", []string{"at least 8 characters", "an upper-case letter", "a lower-case letter", "a digit", "a special character"}},
		{strings.Repeat("Aa1!", 19), []string{"at most 72 bytes"}},
	}
	for _, tc := range tests {
		err := checkPasswordPolicy(tc.pw)
		if tc.missing == nil {
			assert.NoError(t, err, tc.pw)
			continue
		}
		require.Error(t, err, tc.pw)
		for _, m := range tc.missing {
			assert.Contains(t, err.Error(), m, tc.pw)
		}
	}
	for range 20 {
		assert.NoError(t, checkPasswordPolicy(generatePassword()))
	}

	// bcrypt reads 72 bytes: a longer password must not match by its start.
	long := strings.Repeat("Aa1!", 18)
	hash, err := hashPassword(long, 4)
	require.NoError(t, err)
	assert.True(t, passwordMatches(hash, long))
	assert.False(t, passwordMatches(hash, long+"x"))
	assert.False(t, needsRehash(hash, 4))
	assert.True(t, needsRehash(hash, 5))
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := start(t, options{})
	resp, got := e.do(http.MethodGet, "/nope", nil)
	assertError(t, resp, got, http.StatusNotFound, "NOT_FOUND")
	resp, got = e.do(http.MethodDelete, "/login", nil)
	assertError(t, resp, got, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
}
