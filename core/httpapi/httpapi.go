// Package httpapi is the core's HTTP surface: the core endpoints, the proxy
// that forwards everything under a module's prefix to the module, and the
// middleware every response passes through (request ids, body limit, one
// error shape).
package httpapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/auth"
	"github.com/chacc/chacc/core/logging"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/core/ratelimit"
)

// Config is what the HTTP layer needs.
type Config struct {
	Mode           string
	MaxBodyBytes   int64
	MaxUploadBytes int64
	// RateLimit is the default limit per client IP; Limiter counts (nil: no
	// limits).
	RateLimit ratelimit.Rate
	Limiter   *ratelimit.Limiter
	// TrustedProxies may name the client in X-Forwarded-For.
	TrustedProxies []*net.IPNet
	// Auth authenticates callers (nil: everything open).
	Auth *auth.Authority
	// AdminToken, when set, is a break-glass bearer token for the core's own
	// routes.
	AdminToken string
	// OpenAPI serves GET /openapi.json, Docs GET /docs and /docs/*, Metrics
	// GET /metrics (each optional); Observer records every request for the
	// metrics (optional).
	OpenAPI, Docs, Metrics http.Handler
	Observer               RequestObserver
}

// Pinger checks the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Server holds the HTTP layer's dependencies.
type Server struct {
	cfg Config
	mgr *modules.Manager
	db  Pinger
	log *slog.Logger
}

// New returns the Echo instance serving the core.
func New(cfg Config, mgr *modules.Manager, db Pinger, log *slog.Logger) *echo.Echo {
	s := &Server{cfg: cfg, mgr: mgr, db: db, log: log}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.HTTPErrorHandler = s.handleError
	e.Pre(requestIDs)
	e.Use(s.instrument, s.recoverer, s.accessLog)

	e.GET("/", s.root, s.rateLimited)
	e.GET("/health", s.health)
	e.GET("/health/live", s.live)
	e.GET("/health/ready", s.ready, logContext) // its database check logs with the context
	s.mountObservability(e)
	// Lifecycle and audit: rate limited, then (with an authenticator
	// enabled) admins only, checked before an upload is read.
	mods := e.Group("/modules", s.rateLimited, s.requireAdmin, logContext)
	mods.POST("", s.install)
	mods.POST("/", s.install)
	mods.GET("", s.list, s.limitBody)
	mods.GET("/", s.list, s.limitBody)
	mods.GET("/:name", s.get, s.limitBody)
	mods.POST("/:name/enable", s.enable, s.limitBody)
	mods.POST("/:name/disable", s.disable, s.limitBody)
	mods.DELETE("/:name/uninstall", s.uninstall, s.limitBody)
	e.GET("/audit", s.audit, s.rateLimited, s.requireAdmin, logContext, s.limitBody)
	e.Any("/*", s.proxy)
	return e
}

// ctxState holds a request's *reqState.
const ctxState = "chacc.request"

// reqState is what the middleware and the proxy note about a request: one
// value in Echo's context rather than one per field.
type reqState struct {
	id, correlationID string
	// target is the module and route the proxy looked up, for the metrics
	// (hasTarget false for the core's own routes).
	target    modules.Target
	hasTarget bool
}

func state(c echo.Context) *reqState { st, _ := c.Get(ctxState).(*reqState); return st }

// safeID tells whether a client's request or correlation id may be kept:
// 1 to 128 of [A-Za-z0-9._:-].
func safeID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestIDs gives every request an X-Request-ID (the client's when it is
// safe, else a new one) and an X-Correlation-ID, both echoed on the response.
func requestIDs(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		rid := c.Request().Header.Get("X-Request-ID")
		if !safeID(rid) {
			rid = newID()
		}
		cid := c.Request().Header.Get("X-Correlation-ID")
		if !safeID(cid) {
			cid = rid
		}
		c.Set(ctxState, &reqState{id: rid, correlationID: cid})
		h := c.Response().Header()
		h["X-Request-Id"] = []string{rid} // canonical keys, as Header.Set would make them
		h["X-Correlation-Id"] = []string{cid}
		return next(c)
	}
}

// logContext puts the request id in the request's context, so that whatever
// its handler logs with the context carries it: the lifecycle routes'
// (modules.Manager logs with InfoContext) and the readiness check's (its
// database query's failure is logged with the context). A request to a module does
// without: it would pay a copy of its http.Request for an id its handler
// never logs with (the proxy names it itself).
func logContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(logging.WithRequestID(r.Context(), requestID(c))))
		return next(c)
	}
}

// newID is 128 random bits in hex, from the runtime's ChaCha8 generator
// (seeded from the system's entropy): an id that no two requests share, at
// a fraction of a getrandom call per request.
func newID() string {
	var b [16]byte
	var h [32]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	hex.Encode(h[:], b[:])
	return string(h[:])
}

func requestID(c echo.Context) string {
	if st := state(c); st != nil {
		return st.id
	}
	return ""
}

// limitBody caps core route bodies at MaxBodyBytes (413 above).
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.cfg.MaxBodyBytes {
			return tooLarge(s.cfg.MaxBodyBytes)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

func tooLarge(limit int64) *core.Error {
	return core.Errorf(core.ETOOLARGE, "PAYLOAD_TOO_LARGE", "Request body is larger than the limit of %d bytes.", limit)
}

func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "panic", p, "request_id", requestID(c))
				err = errors.New("panic")
			}
		}()
		return next(c)
	}
}

func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		r := c.Request()
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", c.Response().Status,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", requestID(c))
		}
		return nil
	}
}

// statusOf maps error codes to HTTP statuses: the one table.
var statusOf = map[string]int{
	core.EINVALID:       http.StatusBadRequest,
	core.EUNAUTHORIZED:  http.StatusUnauthorized,
	core.EFORBIDDEN:     http.StatusForbidden,
	core.ENOTFOUND:      http.StatusNotFound,
	core.ECONFLICT:      http.StatusConflict,
	core.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	core.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	core.ETOOMANY:       http.StatusTooManyRequests,
	core.EUNAVAILABLE:   http.StatusServiceUnavailable,
	core.EINTERNAL:      http.StatusInternalServerError,
}

// errorBody is the one error shape.
type errorBody struct {
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code"`
	RequestID string `json:"request_id"`
}

func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	body := errorBody{Detail: "Internal error.", ErrorCode: "INTERNAL_ERROR", RequestID: requestID(c)}
	status := http.StatusInternalServerError
	var ce *core.Error
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		status, body.Detail, body.ErrorCode = statusOf[ce.Code], ce.Message, ce.ErrorCode
		if ce.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", itoa(ce.RetryAfter))
		}
		if ce.Code == core.EUNAUTHORIZED {
			challenge(c.Response().Header(), ce.ErrorCode)
		}
		if ce.Code == core.EINTERNAL {
			s.log.Error("internal error", "error", err, "request_id", body.RequestID)
			body.Detail = "Internal error."
		}
	case errors.As(err, &mbe):
		status, body.Detail, body.ErrorCode = http.StatusRequestEntityTooLarge, tooLarge(mbe.Limit).Message, "PAYLOAD_TOO_LARGE"
	case errors.As(err, &he):
		status = he.Code
		body.ErrorCode = httpErrorCode(he.Code)
		body.Detail = http.StatusText(he.Code) + "."
		if msg, ok := he.Message.(string); ok && status < 500 {
			body.Detail = msg
		}
	default:
		s.log.Error("internal error", "error", err, "request_id", body.RequestID, "path", c.Request().URL.Path)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

func httpErrorCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusMethodNotAllowed:
		return "METHOD_NOT_ALLOWED"
	case http.StatusRequestEntityTooLarge:
		return "PAYLOAD_TOO_LARGE"
	case http.StatusBadRequest:
		return "BAD_REQUEST"
	case http.StatusUnsupportedMediaType:
		return "UNSUPPORTED_MEDIA_TYPE"
	}
	if status >= 500 {
		return "INTERNAL_ERROR"
	}
	return "HTTP_ERROR"
}
