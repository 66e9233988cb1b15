package httpapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/auth"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/core/ratelimit"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// ctxPrincipal holds the authenticated caller of a core route.
const ctxPrincipal = "chacc.principal"

// ipExtractor trusts X-Forwarded-For only from the configured proxies.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect() // no X-Forwarded-For spoofing
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// rateLimited is the core's default limit, for core routes: every route
// but the health probes.
func (s *Server) rateLimited(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.takeRate(c, "global", s.cfg.RateLimit); err != nil {
			return err
		}
		return next(c)
	}
}

// takeRate counts the request against rate under scope, per client IP, and
// sets the X-RateLimit headers; 429 with Retry-After when the count is used
// up. A store that cannot be reached lets the request through (logged): the
// limit protects the service, it must not take it down.
func (s *Server) takeRate(c echo.Context, scope string, rate ratelimit.Rate) error {
	if s.cfg.Limiter == nil || rate.IsZero() {
		return nil
	}
	res, err := s.cfg.Limiter.Take(c.Request().Context(), scope+":"+clientKey(c.RealIP()), rate)
	if err != nil {
		s.log.Warn("rate limit store unavailable; request let through", "error", err, "request_id", requestID(c))
		return nil
	}
	h := c.Response().Header()
	h.Set("X-RateLimit-Limit", strconv.FormatInt(res.Limit, 10))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(res.Reset.Unix(), 10))
	if res.Reached {
		retry := max(int(time.Until(res.Reset).Seconds()+0.999), 1)
		return &core.Error{Code: core.ETOOMANY, ErrorCode: "RATE_LIMITED", RetryAfter: retry,
			Message: "Too many requests: the limit is " + strconv.FormatInt(res.Limit, 10) + " per " + rate.Period.String() + "; try again later."}
	}
	return nil
}

// routeRate is the limit that applies to a module route: its own when it
// declares one (counted under its key, shared by the module's routes with
// the same key), else the core's default.
func (s *Server) routeRate(t modules.Target) (scope string, rate ratelimit.Rate) {
	rl := t.Route.GetRateLimit()
	if rl == nil || rl.GetRequests() == 0 || rl.GetPeriodSeconds() == 0 {
		return "global", s.cfg.RateLimit
	}
	key := rl.GetKey()
	if key == "" {
		key = t.Route.GetMethod() + " " + t.Route.GetPath()
	}
	return "route:" + t.Module + ":" + key, ratelimit.Rate{Limit: int64(rl.GetRequests()), Period: time.Duration(rl.GetPeriodSeconds()) * time.Second}
}

// requireAdmin guards the core's lifecycle and audit routes: with an
// authenticator enabled they need an admin; without one they are open.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.breakGlass(c) {
			c.Set(ctxPrincipal, &modulev1.Principal{Subject: "admin-token", Roles: []string{"admin"}, Method: "admin_token"})
			return next(c)
		}
		p, err := s.authenticate(c, "admin", nil)
		if err != nil {
			return err
		}
		if p != nil {
			c.Set(ctxPrincipal, p)
		}
		return next(c)
	}
}

// authenticate establishes the caller of c and checks it against a route's
// requirement (minRole, scopes). It returns nil, nil for an anonymous caller
// of a route without requirement, or when no authenticator is enabled. A
// credential sent to a route without requirement is still checked so that the
// module sees who calls; a bad one there is ignored.
func (s *Server) authenticate(c echo.Context, minRole string, scopes []string) (*modulev1.Principal, error) {
	a := s.cfg.Auth
	if a == nil {
		return nil, nil
	}
	needed := minRole != "" || len(scopes) > 0
	cred, present := auth.CredentialFrom(c.Request().Header)
	if !needed && !present {
		return nil, nil
	}
	required, err := a.Required(c.Request().Context())
	if err != nil {
		if needed {
			return nil, err
		}
		return nil, nil
	}
	if !required {
		return nil, nil
	}
	var p *modulev1.Principal
	if present {
		p, err = a.Authenticate(c.Request().Context(), cred)
		if err != nil {
			if !needed {
				return nil, nil
			}
			if core.ErrorCode(err) == core.EUNAVAILABLE {
				s.log.Warn("credential check failed", "error", err, "request_id", requestID(c))
			}
			return nil, err
		}
	}
	if err := auth.Authorize(p, minRole, scopes); err != nil {
		return nil, err
	}
	return p, nil
}

// challenge sets WWW-Authenticate on a 401.
func challenge(h http.Header, errorCode string) {
	v := `Bearer realm="chacc"`
	if errorCode != "AUTHENTICATION_REQUIRED" {
		v += `, error="invalid_token"`
	}
	h.Set("WWW-Authenticate", v)
}

// breakGlass reports whether the request carries CHACC_ADMIN_TOKEN, which
// lets an operator act on the core's routes while the auth module is down.
func (s *Server) breakGlass(c echo.Context) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	cred, ok := auth.CredentialFrom(c.Request().Header)
	if !ok || cred.Bearer == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(cred.Bearer), []byte(s.cfg.AdminToken)) != 1 {
		return false
	}
	s.log.Warn("break-glass admin token used", "method", c.Request().Method, "path", c.Request().URL.Path, "client_ip", c.RealIP(), "request_id", requestID(c))
	return true
}

// clientKey is what a client is counted as: its IPv4 address, or its IPv6
// /64 (one subscriber usually holds a whole /64 and could rotate through it).
func clientKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil || a.To4() != nil {
		return ip
	}
	return a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
