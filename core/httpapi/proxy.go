package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/instance"
	"github.com/chacc/chacc/core/modules"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk/wire"
)

// proxy forwards a request under a module's prefix to the module. No module
// there: 404. The module down: 503 with Retry-After, at once.
func (s *Server) proxy(c echo.Context) error {
	r := c.Request()
	if err := canonicalPath(r.URL); err != nil {
		return err
	}
	st := state(c) // requestIDs (Pre) set it
	t, err := s.lookup(r.Method, r.URL.Path)
	st.target, st.hasTarget = t, true // module and route for the metrics
	if err != nil {
		return err
	}
	scope, rate := s.routeRate(t)
	if err := s.takeRate(c, scope, rate); err != nil {
		return err
	}
	principal, err := s.authenticate(c, t.Route.GetMinRole(), t.Route.GetScopes())
	if err != nil {
		return err
	}
	limit := s.cfg.MaxBodyBytes
	if mb := t.Route.GetMaxBodyBytes(); mb != 0 {
		limit = mb
	}
	// A request without a body (ContentLength 0: net/http's NoBody) has
	// nothing to limit, and no upload to interleave with the answer.
	hasBody := r.ContentLength != 0
	if limit > 0 && hasBody {
		if r.ContentLength > limit {
			return tooLarge(limit)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	}
	head := &modulev1.RequestHead{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
		Headers: wire.HeadersToProto(r.Header), Host: r.Host, ContentLength: r.ContentLength,
		ClientIp: c.RealIP(), RequestId: st.id, CorrelationId: st.correlationID,
		Route: t.Route.GetPath(), PathParams: t.PathParams, Principal: principal,
	}
	if principal != nil {
		token, done := s.mgr.RegisterCall(t.Module, principal)
		defer done()
		head.CallToken = token
	}
	if hasBody {
		// The module may answer while the body is still arriving (echo,
		// streams).
		_ = http.NewResponseController(c.Response().Writer).EnableFullDuplex()
	}

	err = t.Instance.Forward(r.Context(), head, r.Body, c.Response())
	if errors.Is(err, instance.ErrStopping) {
		// The lookup raced with a switch (upgrade, disable): nothing was sent,
		// so the request goes to whatever serves the prefix now.
		t, err = s.lookup(r.Method, r.URL.Path)
		st.target = t
		if err != nil {
			return err
		}
		// The new version may declare the route differently: check again.
		if head.Principal, err = s.authenticate(c, t.Route.GetMinRole(), t.Route.GetScopes()); err != nil {
			return err
		}
		head.Route, head.PathParams = t.Route.GetPath(), t.PathParams
		err = t.Instance.Forward(r.Context(), head, r.Body, c.Response())
	}
	if err == nil {
		return nil
	}
	var fe *wire.ForwardError
	if !errors.As(err, &fe) {
		return &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "MODULE_UNAVAILABLE", RetryAfter: 1,
			Message: "Module '" + t.Module + "' is unavailable; try again shortly.", Err: err}
	}
	if fe.Started || errors.Is(r.Context().Err(), context.Canceled) {
		// Part of the answer is out or the client left: cut the connection so
		// the client cannot take a truncated body for a whole one.
		if r.Context().Err() == nil {
			s.log.Warn("module failed mid-response", "module", t.Module, "error", err, "request_id", requestID(c))
		}
		panic(http.ErrAbortHandler)
	}
	var mbe *http.MaxBytesError
	if errors.As(fe.Err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	if fe.Body {
		return core.Errorf(core.EINVALID, "BAD_REQUEST_BODY", "Could not read the request body.")
	}
	s.log.Warn("module unavailable", "module", t.Module, "error", err, "request_id", requestID(c))
	return &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "MODULE_UNAVAILABLE", RetryAfter: 1,
		Message: "Module '" + t.Module + "' is unavailable; try again shortly.", Err: err}
}

// lookup finds the running module for a path: 404 when none is mounted, 503
// with Retry-After when it is down.
func (s *Server) lookup(method, path string) (modules.Target, error) {
	t, ok := s.mgr.Lookup(method, path)
	if !ok {
		return t, core.Errorf(core.ENOTFOUND, "NOT_FOUND", "Not found.")
	}
	if t.Instance == nil {
		return t, &core.Error{Code: core.EUNAVAILABLE, ErrorCode: "MODULE_UNAVAILABLE", RetryAfter: t.RetryAfter,
			Message: "Module '" + t.Module + "' is unavailable (" + string(t.State) + "); try again shortly."}
	}
	return t, nil
}

// canonicalPath refuses a path whose meaning differs between the core and a
// module's router: the core matches the decoded path against the declared
// routes to pick the requirement it enforces, while a router may match the
// raw path. An encoded "/" or "\\", an empty segment or a dot segment could
// make the core find no declared route (no requirement) while the module's
// router still reaches a protected handler.
func canonicalPath(u *url.URL) error {
	raw := u.EscapedPath()
	for i := strings.IndexByte(raw, '%'); i >= 0 && i+2 < len(raw); {
		switch raw[i+1] {
		case '2':
			if c := raw[i+2] | 0x20; c == 'f' || c == 'e' {
				return badPath()
			}
		case '5':
			if raw[i+2]|0x20 == 'c' {
				return badPath()
			}
		}
		j := strings.IndexByte(raw[i+1:], '%')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p == "" {
		return nil
	}
	for rest := p[1:]; ; {
		seg := rest
		i := strings.IndexByte(rest, '/')
		if i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		}
		if seg == "" || seg == "." || seg == ".." || strings.IndexByte(seg, '\\') >= 0 {
			return badPath()
		}
		if i < 0 {
			return nil
		}
	}
}

func badPath() *core.Error {
	return core.Errorf(core.EINVALID, "BAD_PATH", "The path is not canonical: no empty, '.' or '..' segments, and no encoded '/', '\\' or '.'.")
}
