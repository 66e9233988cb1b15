package sdktest

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/google/uuid"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/wire"
)

// RequestOption changes the request head a request is forwarded with, as the
// core would have filled it. Write your own for what no option here covers.
type RequestOption func(*modulev1.RequestHead)

// AsPrincipal makes the request come from p, as if the core had
// authenticated it. The module reads it with [sdk.PrincipalFrom].
func AsPrincipal(p sdk.Principal) RequestOption {
	return func(head *modulev1.RequestHead) {
		head.Principal = &modulev1.Principal{
			Subject: p.Subject, DisplayName: p.DisplayName, Roles: p.Roles, Scopes: p.Scopes,
			Method: p.Method, Attributes: p.Attributes,
		}
	}
}

// ServeHTTP forwards r to the module as the core does, anonymously: the
// request head carries the request id (a safe X-Request-ID, else a new one),
// the correlation id (a safe X-Correlation-ID, else the request id), the
// client IP from r.RemoteAddr, and the matched declared route with its path
// parameters. The response carries X-Request-ID and X-Correlation-ID.
func (h *Harness) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r, nil) }

// Do serves r through the module and returns the recorded response; see
// [Harness.ServeHTTP]. Make r with httptest.NewRequest.
func (h *Harness) Do(r *http.Request, opts ...RequestOption) *http.Response {
	rec := httptest.NewRecorder()
	h.serve(rec, r, opts)
	return rec.Result()
}

// URL returns the address of an HTTP server in front of [Harness.ServeHTTP],
// started on first use and closed when the test ends, for clients that need
// a real connection: streamed responses, cancellation.
func (h *Harness) URL() string {
	h.srvOnce.Do(func() {
		h.srv = httptest.NewServer(h)
		h.t.Cleanup(h.srv.Close)
	})
	return h.srv.URL
}

func (h *Harness) serve(w http.ResponseWriter, r *http.Request, opts []RequestOption) {
	head := h.head(r)
	for _, opt := range opts {
		opt(head)
	}
	w.Header().Set("X-Request-ID", head.GetRequestId())
	w.Header().Set("X-Correlation-ID", head.GetCorrelationId())
	// The module may answer while the request body still arrives (an echo,
	// a proxy); HTTP/1 servers need to be told. Recorders do not support it.
	_ = http.NewResponseController(w).EnableFullDuplex()

	err := wire.Forward(r.Context(), h.http, head, r.Body, w)
	var fe *wire.ForwardError
	if !errors.As(err, &fe) || fe.Started || r.Context().Err() != nil {
		return // done, or too late to answer, or nobody left to answer
	}
	w.Header().Set("Content-Type", "application/json")
	if fe.Body {
		w.WriteHeader(http.StatusBadRequest)
		w.Write(errorBody("Could not read the request body.", "BAD_REQUEST", head.GetRequestId()))
		return
	}
	h.t.Logf("sdktest: forward %s %s: %v", r.Method, r.URL.Path, err)
	w.WriteHeader(http.StatusBadGateway)
	w.Write(errorBody("The module failed to answer.", "MODULE_ERROR", head.GetRequestId()))
}

// head builds the request head the core would send for r.
func (h *Harness) head(r *http.Request) *modulev1.RequestHead {
	id := r.Header.Get("X-Request-ID")
	if !safeID(id) {
		id = uuid.NewString()
	}
	correlation := r.Header.Get("X-Correlation-ID")
	if !safeID(correlation) {
		correlation = id
	}
	length := r.ContentLength
	if length == 0 && r.Body != nil && r.Body != http.NoBody {
		length = -1 // a client request with a body of unknown length
	}
	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		clientIP = r.RemoteAddr
	}
	head := &modulev1.RequestHead{
		Method:        r.Method,
		Path:          r.URL.Path,
		RawPath:       r.URL.RawPath,
		RawQuery:      r.URL.RawQuery,
		Headers:       wire.HeadersToProto(r.Header),
		Host:          r.Host,
		ContentLength: length,
		ClientIp:      clientIP,
		RequestId:     id,
		CorrelationId: correlation,
	}
	if rt, params, ok := matchRoute(h.routes, r.Method, r.URL.Path); ok {
		head.Route, head.PathParams = rt.pattern, params
	}
	return head
}

// safeID reports whether a client-sent id may be echoed: 1 to 128 letters,
// digits, '-', '_', '.' or ':'.
func safeID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

var _ http.Handler = (*Harness)(nil)
