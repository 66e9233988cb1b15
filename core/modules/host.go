package modules

import (
	"bytes"
	"context"
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
	head := &modulev1.RequestHead{
		Method: method, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery,
		Headers: req.GetHeaders(), ContentLength: int64(len(req.GetBody())),
		RequestId: req.GetRequestId(), CorrelationId: req.GetCorrelationId(),
		Principal: req.GetPrincipal(), CallerModule: h.name,
		Route: t.Route.GetPath(), PathParams: t.PathParams,
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
