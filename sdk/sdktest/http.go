package sdktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"

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

	var err error
	if h.direct != nil {
		err = h.direct.Forward(r.Context(), head, r.Body, w)
	} else {
		err = wire.Forward(r.Context(), h.http, head, r.Body, w)
	}
	var fe *wire.ForwardError
	if !errors.As(err, &fe) || fe.Started || r.Context().Err() != nil {
		return // done, or too late to answer, or nobody left to answer
	}
	w.Header().Set("Content-Type", "application/json")
	if fe.Body {
		w.WriteHeader(http.StatusBadRequest)
		w.Write(errorBody("Could not read the request body.", "BAD_REQUEST_BODY", head.GetRequestId()))
		return
	}
	h.t.Logf("sdktest: forward %s %s: %v", r.Method, r.URL.Path, err)
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(errorBody(fmt.Sprintf("Module '%s' is unavailable; try again shortly.", h.manifest.Name), "MODULE_UNAVAILABLE", head.GetRequestId()))
}

// head builds the request head the core would send for r.
func (h *Harness) head(r *http.Request) *modulev1.RequestHead {
	id := r.Header.Get("X-Request-ID")
	if !safeID.MatchString(id) {
		id = uuid.NewString()
	}
	correlation := r.Header.Get("X-Correlation-ID")
	if !safeID.MatchString(correlation) {
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
	// The core picks the most specific declared route.
	if i, params := wire.BestMatch(h.routes, r.Method, r.URL.Path); i >= 0 {
		head.Route, head.PathParams = h.routes[i].Path, params
	}
	return head
}

// safeID is what a client-sent request or correlation id must be for the
// core to keep it.
var safeID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

var _ http.Handler = (*Harness)(nil)

// errorBody is the chacc error shape.
func errorBody(detail, code, requestID string) []byte {
	b, _ := json.Marshal(struct {
		Detail    string `json:"detail"`
		ErrorCode string `json:"error_code"`
		RequestID string `json:"request_id"`
	}{detail, code, requestID})
	return b
}
