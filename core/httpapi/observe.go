package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// RequestObserver records one answered request (core/metrics implements
// it): module is "core" for the core's routes, route the declared pattern or
// "unmatched", code the status sent.
type RequestObserver interface {
	ObserveRequest(module, route, method string, code int, d time.Duration)
}

// unmatched is the route label of a request no declared route matches.
const unmatched = "unmatched"

// mountObservability serves the OpenAPI document, its UI and the metrics.
func (s *Server) mountObservability(e *echo.Echo) {
	if h := s.cfg.OpenAPI; h != nil {
		e.GET("/openapi.json", echo.WrapHandler(h), s.rateLimited)
	}
	if h := s.cfg.Docs; h != nil {
		e.GET("/docs", echo.WrapHandler(h), s.rateLimited)
		e.GET("/docs/*", echo.WrapHandler(h), s.rateLimited)
	}
	if h := s.cfg.Metrics; h != nil {
		e.GET("/metrics", echo.WrapHandler(h))
	}
}

// instrument records every request with Observer, after the error handler
// has answered. The module and route come from the proxy's lookup (the
// declared route pattern), or for the core's own routes from the router.
func (s *Server) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	obs := s.cfg.Observer
	if obs == nil {
		return next
	}
	return func(c echo.Context) error {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				// The answer broke off (http.ErrAbortHandler) or a panic got
				// through: count what the client got, then go on panicking.
				code := c.Response().Status
				if !c.Response().Committed {
					code = http.StatusInternalServerError
				}
				if c.Request().Context().Err() == context.Canceled {
					code = 499 // the client went away
				}
				observe(obs, c, code, start)
				panic(p)
			}
		}()
		if err := next(c); err != nil {
			c.Error(err)
		}
		observe(obs, c, c.Response().Status, start)
		return nil
	}
}

func observe(obs RequestObserver, c echo.Context, code int, start time.Time) {
	module, route := "core", c.Path()
	if st := state(c); st != nil && st.hasTarget {
		t := &st.target
		route = unmatched
		if t.Module != "" {
			module = t.Module
			if t.Route != nil {
				route = t.Route.GetPath()
			}
		}
	} else if route == "" || route == "/*" {
		route = unmatched
	}
	obs.ObserveRequest(module, route, c.Request().Method, code, time.Since(start))
}
