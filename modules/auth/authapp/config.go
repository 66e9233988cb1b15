package authapp

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is the module's settings, read from the AUTH_* settings the core
// passes (never from the process environment, which go-plugin cleans).
// Defaults are filled in by [loadConfig].
type config struct {
	// AllowRegistration lets anyone create an account (AUTH_ALLOW_REGISTRATION).
	// Default: true.
	AllowRegistration bool
	// RequireVerifiedEmail refuses login until the email is verified
	// (AUTH_REQUIRE_VERIFIED_EMAIL). Default: false.
	RequireVerifiedEmail bool
	// BcryptCost is the bcrypt work factor (AUTH_BCRYPT_COST), 10 to 16.
	// Default: 12.
	BcryptCost int
	// MaxFailedLogins consecutive failures lock an account
	// (AUTH_MAX_FAILED_LOGINS). Default: 5.
	MaxFailedLogins int
	// Lockout is how long (AUTH_LOCKOUT_MINUTES). Default: 15 minutes.
	Lockout time.Duration
	// LoginLimit is the core-enforced per-IP limit on register, login, token
	// and refresh (AUTH_LOGIN_RATE_LIMIT, "10/5m"). Default: 10 per 5 minutes.
	LoginLimit rateLimit
	// AccessTTL is the lifetime of access tokens (AUTH_ACCESS_TOKEN_TTL), 1m
	// to 60m. Default: 15m.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens (AUTH_REFRESH_TOKEN_TTL),
	// a Go duration or days ("7d"), 1h to 90d. Default: 7 days.
	RefreshTTL time.Duration
	// Issuer and Audience are the "iss" and "aud" claims (AUTH_JWT_ISSUER,
	// AUTH_JWT_AUDIENCE). Default: "chacc-auth", "chacc".
	Issuer, Audience string
	// PrivateKey signs access tokens: a PEM PKCS#8 Ed25519 key in
	// AUTH_JWT_PRIVATE_KEY, or in the file AUTH_JWT_PRIVATE_KEY_FILE.
	// Default (nil): a key generated once and kept in the module's database.
	PrivateKey ed25519.PrivateKey
	// AdminEmail and AdminPassword make the first admin when none exists
	// (AUTH_ADMIN_EMAIL, AUTH_ADMIN_PASSWORD).
	AdminEmail, AdminPassword string
	// SMTP delivers verification and reset codes; empty Host means no email.
	SMTP smtpConfig
}

// smtpConfig is the mail server (AUTH_SMTP_*).
type smtpConfig struct {
	// Host and Port of the server (AUTH_SMTP_HOST, AUTH_SMTP_PORT). Default
	// port: 587. STARTTLS is used when the server offers it.
	Host string
	Port int
	// Username and Password authenticate with PLAIN when Username is set
	// (AUTH_SMTP_USERNAME, AUTH_SMTP_PASSWORD); net/smtp sends them only over
	// TLS or to localhost.
	Username, Password string
	// From is the sender address (AUTH_SMTP_FROM). Default: no-reply@<Host>.
	From string
}

// rateLimit is a number of requests per period.
type rateLimit struct {
	Requests int
	Period   time.Duration
}

// defaultLoginLimit is AUTH_LOGIN_RATE_LIMIT's default.
var defaultLoginLimit = rateLimit{Requests: 10, Period: 5 * time.Minute}

// minBcryptCost is the least AUTH_BCRYPT_COST accepted. Only this package's
// tests lower it (to keep them fast); no setting can.
var minBcryptCost = 10

// Limits of the settings.
const (
	maxBcryptCost = 16
	minAccessTTL  = time.Minute
	maxAccessTTL  = 60 * time.Minute
	minRefreshTTL = time.Hour
	maxRefreshTTL = 90 * 24 * time.Hour
)

// loadConfig reads the settings through get (rt.Setting) and checks them; an
// error names the setting at fault, never its value.
func loadConfig(get func(string) string) (config, error) {
	cfg := config{
		Issuer:   or(get("AUTH_JWT_ISSUER"), "chacc-auth"),
		Audience: or(get("AUTH_JWT_AUDIENCE"), "chacc"),
		SMTP: smtpConfig{
			Host:     strings.TrimSpace(get("AUTH_SMTP_HOST")),
			Username: get("AUTH_SMTP_USERNAME"),
			Password: get("AUTH_SMTP_PASSWORD"),
			From:     strings.TrimSpace(get("AUTH_SMTP_FROM")),
		},
		AdminEmail:    strings.TrimSpace(get("AUTH_ADMIN_EMAIL")),
		AdminPassword: get("AUTH_ADMIN_PASSWORD"),
	}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	cfg.AllowRegistration, err = boolSetting(get, "AUTH_ALLOW_REGISTRATION", true)
	check(err)
	cfg.RequireVerifiedEmail, err = boolSetting(get, "AUTH_REQUIRE_VERIFIED_EMAIL", false)
	check(err)
	cfg.BcryptCost, err = intSetting(get, "AUTH_BCRYPT_COST", 12, minBcryptCost, maxBcryptCost)
	check(err)
	cfg.MaxFailedLogins, err = intSetting(get, "AUTH_MAX_FAILED_LOGINS", 5, 1, 100)
	check(err)
	minutes, err := intSetting(get, "AUTH_LOCKOUT_MINUTES", 15, 1, 24*60)
	check(err)
	cfg.Lockout = time.Duration(minutes) * time.Minute
	cfg.LoginLimit, err = parseRateLimit(get("AUTH_LOGIN_RATE_LIMIT"))
	check(err)
	cfg.AccessTTL, err = durationSetting(get, "AUTH_ACCESS_TOKEN_TTL", 15*time.Minute, minAccessTTL, maxAccessTTL)
	check(err)
	cfg.RefreshTTL, err = durationSetting(get, "AUTH_REFRESH_TOKEN_TTL", 7*24*time.Hour, minRefreshTTL, maxRefreshTTL)
	check(err)
	cfg.SMTP.Port, err = intSetting(get, "AUTH_SMTP_PORT", 587, 1, 65535)
	check(err)
	if cfg.SMTP.From == "" && cfg.SMTP.Host != "" {
		cfg.SMTP.From = "no-reply@" + cfg.SMTP.Host
	}

	keyPEM, keyFile := get("AUTH_JWT_PRIVATE_KEY"), get("AUTH_JWT_PRIVATE_KEY_FILE")
	switch {
	case keyPEM != "" && keyFile != "":
		check(errors.New("set AUTH_JWT_PRIVATE_KEY or AUTH_JWT_PRIVATE_KEY_FILE, not both"))
	case keyPEM != "":
		// An environment variable often carries a PEM with "\n" escapes.
		if !strings.Contains(keyPEM, "\n") {
			keyPEM = strings.ReplaceAll(keyPEM, `\n`, "\n")
		}
		cfg.PrivateKey, err = parsePrivateKey([]byte(keyPEM))
		if err != nil {
			check(fmt.Errorf("AUTH_JWT_PRIVATE_KEY: %w", err))
		}
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err == nil {
			cfg.PrivateKey, err = parsePrivateKey(b)
		}
		if err != nil {
			check(fmt.Errorf("AUTH_JWT_PRIVATE_KEY_FILE: %w", err))
		}
	}

	if (cfg.AdminEmail == "") != (cfg.AdminPassword == "") {
		check(errors.New("set both AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD, or neither"))
	} else if cfg.AdminEmail != "" {
		if _, err := normalizeEmail(cfg.AdminEmail); err != nil {
			check(fmt.Errorf("AUTH_ADMIN_EMAIL: %w", err))
		}
		if err := checkPasswordPolicy(cfg.AdminPassword); err != nil {
			check(fmt.Errorf("AUTH_ADMIN_PASSWORD does not meet the password policy: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, fmt.Errorf("auth settings: %w", err)
	}
	return cfg, nil
}

func or(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return def
}

func boolSetting(get func(string) string, name string, def bool) (bool, error) {
	s := strings.TrimSpace(get(name))
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false", name)
	}
	return v, nil
}

func intSetting(get func(string) string, name string, def, lo, hi int) (int, error) {
	s := strings.TrimSpace(get(name))
	if s == "" {
		return def, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d", name, lo, hi)
	}
	return v, nil
}

func durationSetting(get func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	s := strings.TrimSpace(get(name))
	if s == "" {
		return def, nil
	}
	v, err := parseDuration(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s must be a duration from %s to %s (e.g. 15m, 12h, 7d)", name, lo, hi)
	}
	return v, nil
}

// parseDuration is time.ParseDuration that also takes whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// parseRateLimit reads "N/period" ("10/5m", "100/1h"); empty is the default.
func parseRateLimit(s string) (rateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return defaultLoginLimit, nil
	}
	bad := errors.New(`AUTH_LOGIN_RATE_LIMIT must be "<requests>/<period>", e.g. "10/5m", with 1 to 100000 requests per 1s to 24h in whole seconds`)
	n, p, ok := strings.Cut(s, "/")
	if !ok {
		return rateLimit{}, bad
	}
	requests, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || requests < 1 || requests > 100000 {
		return rateLimit{}, bad
	}
	period, err := parseDuration(strings.TrimSpace(p))
	if err != nil || period < time.Second || period > 24*time.Hour || period%time.Second != 0 {
		return rateLimit{}, bad
	}
	return rateLimit{Requests: requests, Period: period}, nil
}
