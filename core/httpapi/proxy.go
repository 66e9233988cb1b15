package httpapi

import (
	"context"
	"errors"
	"net/http"

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
	t, err := s.lookup(r.Method, r.URL.Path)
	if err != nil {
		return err
	}
	limit := s.cfg.MaxBodyBytes
	if mb := t.Route.GetMaxBodyBytes(); mb != 0 {
		limit = mb
	}
	if limit > 0 {
		if r.ContentLength > limit {
			return tooLarge(limit)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	}
	head := &modulev1.RequestHead{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
		Headers: wire.HeadersToProto(r.Header), Host: r.Host, ContentLength: r.ContentLength,
		ClientIp: c.RealIP(), RequestId: requestID(c), CorrelationId: c.Get(ctxCorrelationID).(string),
		Route: t.Route.GetPath(), PathParams: t.PathParams,
	}
	// The module may answer while the body is still arriving (echo, streams).
	_ = http.NewResponseController(c.Response().Writer).EnableFullDuplex()

	err = t.Instance.Forward(r.Context(), head, r.Body, c.Response())
	if errors.Is(err, instance.ErrStopping) {
		// The lookup raced with a switch (upgrade, disable): nothing was sent,
		// so the request goes to whatever serves the prefix now.
		if t, err = s.lookup(r.Method, r.URL.Path); err != nil {
			return err
		}
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
