package authapp

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/chacc/chacc/sdk"
)

// prefix is the manifest's base_path_prefix.
const prefix = "/api/v1/auth"

// loginRateLimitKey names the one per-client count the core keeps for the
// routes that take a password or a refresh token.
const loginRateLimitKey = "auth-login"

// maxBody bounds every request body the module reads. The core enforces it
// (MaxBodyBytes on each route) and the handlers too.
const maxBody = 64 << 10

// Scopes a restricted principal (an API key with scopes) needs on this
// module's own routes. A principal without scopes (a login token) is
// governed by its role alone.
const (
	scopeAPIKeys = "auth:api_keys"
	scopeUsers   = "auth:users"
)

// routes declares every route the module serves, with full paths. limit is
// shared by the password and token routes; Setup sets it from
// AUTH_LOGIN_RATE_LIMIT before the core reads the table (Describe comes
// after Setup).
func routes(limit *sdk.RateLimit) []sdk.Route {
	post := func(path, summary string) sdk.Route {
		return sdk.Route{Method: http.MethodPost, Path: prefix + path, MaxBodyBytes: maxBody, Summary: summary}
	}
	limited := func(r sdk.Route) sdk.Route { r.RateLimit = limit; return r }
	role := func(r sdk.Route, min string, scopes ...string) sdk.Route {
		r.MinRole, r.Scopes = min, scopes
		return r
	}
	return []sdk.Route{
		limited(post("/register", "Creates an account (email, password, display_name).")),
		post("/verify-email", "Verifies an email address with the 6-digit code sent to it."),
		post("/resend-verification", "Sends a new verification code (at most once a minute)."),
		limited(post("/login", "Exchanges email or username and password for an access and a refresh token.")),
		limited(post("/token", "OAuth2 password grant: same as /login, also form-encoded.")),
		limited(post("/refresh", "Rotates a refresh token: a new pair; reusing an old one revokes its family.")),
		role(post("/logout", "Revokes the caller's token family."), "viewer"),
		role(sdk.Route{Method: http.MethodGet, Path: prefix + "/me", Summary: "Returns the current user."}, "viewer"),
		post("/password-reset", "Sends a password reset code when the account exists; always 200."),
		post("/password-reset/confirm", "Sets a new password with the reset code; ends every session."),
		role(post("/api-keys", "Creates an API key, shown once."), "viewer", scopeAPIKeys),
		role(sdk.Route{Method: http.MethodGet, Path: prefix + "/api-keys", Summary: "Lists the caller's API keys."}, "viewer", scopeAPIKeys),
		role(sdk.Route{Method: http.MethodDelete, Path: prefix + "/api-keys/:id", Summary: "Revokes an API key."}, "viewer", scopeAPIKeys),
		role(sdk.Route{Method: http.MethodGet, Path: prefix + "/users", Summary: "Lists users (admin)."}, "admin", scopeUsers),
		role(sdk.Route{Method: http.MethodPatch, Path: prefix + "/users/:id", MaxBodyBytes: maxBody, Summary: "Changes a user's role or disables them (admin)."}, "admin", scopeUsers),
	}
}

// Module is the module as the core runs it (main passes it to [sdk.Serve]).
func Module() sdk.Module { return NewModule(time.Now) }

// NewModule returns the module reading the time from now; tests pass a clock
// they control. Each call has its own route table, so that two modules in
// one process (tests) do not share the rate limit Setup fills in.
func NewModule(now func() time.Time) sdk.Module {
	limit := &sdk.RateLimit{Requests: defaultLoginLimit.Requests, Period: defaultLoginLimit.Period, Key: loginRateLimitKey}
	return sdk.Module{
		Routes: routes(limit),
		Setup: func(ctx context.Context, rt *sdk.Runtime) (http.Handler, error) {
			cfg, err := loadConfig(rt.Setting)
			if err != nil {
				return nil, err
			}
			limit.Requests, limit.Period = cfg.LoginLimit.Requests, cfg.LoginLimit.Period
			return setup(ctx, rt, cfg, now)
		},
	}
}

// setup opens and migrates the database, loads or creates the signing key,
// makes the first admin, registers the authenticator and returns the HTTP
// handler.
func setup(ctx context.Context, rt *sdk.Runtime, cfg config, now func() time.Time) (http.Handler, error) {
	st, err := openStore(ctx, rt.Database())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	clock := func() time.Time { return now().UTC().Truncate(time.Microsecond) }

	key, err := loadSigningKey(ctx, st, cfg, clock)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	svc, err := newService(rt, st, cfg, key, clock)
	if err != nil {
		return nil, err
	}
	if err := svc.bootstrapAdmin(ctx); err != nil {
		return nil, fmt.Errorf("first admin: %w", err)
	}
	svc.warnAboutMail(ctx)

	rt.OnShutdown(func(context.Context) error { svc.mail.wait(); return st.Close() })
	rt.HealthCheck(st.Ping)
	rt.ServeAuthenticator(&authenticator{svc: svc})
	ok = true
	return (&api{rt: rt, svc: svc}).handler(), nil
}
