package modules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chacc/chacc/core"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/wire"
)

// hostServer is the Host service for one module. The calling module is known
// from the connection it arrived on, never from the message.
type hostServer struct {
	modulev1.UnimplementedHostServer
	m        *Manager
	name     string
	manifest sdk.Manifest
}

func (h *hostServer) Publish(ctx context.Context, req *modulev1.PublishRequest) (*modulev1.PublishResponse, error) {
	allowed := false
	for _, p := range h.manifest.Publishes {
		if sdk.MatchEventType(p, req.GetType()) {
			allowed = true
		}
	}
	if !allowed {
		return nil, status.Errorf(codes.PermissionDenied, "module %q may not publish %q: not in its manifest's publishes", h.name, req.GetType())
	}
	ev, err := h.m.bus.Publish(ctx, h.name, req)
	if err != nil {
		if core.ErrorCode(err) == core.EINVALID {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		h.m.log.Error("publish failed", "module", h.name, "error", err)
		return nil, status.Error(codes.Unavailable, "event store unavailable")
	}
	return &modulev1.PublishResponse{Id: ev.ID, Sequence: ev.Seq}, nil
}

func (h *hostServer) Call(ctx context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error) {
	u, err := url.Parse(req.GetPath())
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		return nil, status.Errorf(codes.InvalidArgument, "bad path %q", req.GetPath())
	}
	method := strings.ToUpper(req.GetMethod())
	if method == "" {
		method = http.MethodGet
	}
	t, ok := h.m.Lookup(method, u.Path)
	if !ok || t.Module != req.GetModule() {
		return nil, status.Errorf(codes.NotFound, "module %q serves no path %q", req.GetModule(), u.Path)
	}
	if t.Instance == nil {
		return nil, status.Errorf(codes.Unavailable, "module %q is %s", t.Module, t.State)
	}
	// The call acts for the principal of the request the module is serving
	// (named by its call token), never for one the module names itself; with
	// no token it is anonymous. Either way it is held to the target route's
	// requirement, as the caller's own request would be (no confused deputy).
	principal := h.m.callPrincipal(h.name, req.GetCallToken())
	if h.m.authorizeCall != nil {
		if err := h.m.authorizeCall(principal, t.Route); err != nil {
			return refusedCall(err, req.GetRequestId()), nil
		}
	}
	head := &modulev1.RequestHead{
		Method: method, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery,
		Headers: req.GetHeaders(), ContentLength: int64(len(req.GetBody())),
		RequestId: req.GetRequestId(), CorrelationId: req.GetCorrelationId(),
		Principal: principal, CallerModule: h.name,
		Route: t.Route.GetPath(), PathParams: t.PathParams,
	}
	if principal != nil {
		token, done := h.m.RegisterCall(t.Module, principal)
		defer done()
		head.CallToken = token
	}
	rec := httptest.NewRecorder()
	if err := t.Instance.Forward(ctx, head, bytes.NewReader(req.GetBody()), rec); err != nil {
		return nil, status.Errorf(codes.Unavailable, "call %s: %v", t.Module, errors.Unwrap(err))
	}
	return &modulev1.CallResponse{
		Status: int32(rec.Code), Headers: wire.HeadersToProto(rec.Header()), Body: rec.Body.Bytes(),
	}, nil
}

func (h *hostServer) Log(ctx context.Context, req *modulev1.LogRequest) (*modulev1.LogResponse, error) {
	level := slog.LevelInfo
	switch req.GetLevel() {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	attrs := []any{"module", h.name}
	if id := req.GetRequestId(); id != "" {
		attrs = append(attrs, "request_id", id)
	}
	for k, v := range req.GetAttrs() {
		attrs = append(attrs, k, v)
	}
	h.m.log.Log(ctx, level, req.GetMessage(), attrs...)
	return &modulev1.LogResponse{}, nil
}

// refusedCall answers a Host.Call the way the target's route would refuse an
// HTTP client: the status and the one error shape.
func refusedCall(err error, requestID string) *modulev1.CallResponse {
	code, ecode, msg := http.StatusForbidden, "FORBIDDEN", err.Error()
	var ce *core.Error
	if errors.As(err, &ce) {
		ecode, msg = ce.ErrorCode, ce.Message
		if ce.Code == core.EUNAUTHORIZED {
			code = http.StatusUnauthorized
		}
	}
	body, _ := json.Marshal(map[string]string{"detail": msg, "error_code": ecode, "request_id": requestID})
	return &modulev1.CallResponse{
		Status:  int32(code),
		Headers: []*modulev1.Header{{Name: "Content-Type", Values: []string{"application/json"}}},
		Body:    body,
	}
}
