package sdktest

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// maxEventID is the longest caller-chosen event id the core accepts.
const maxEventID = 64

// host is the fake core behind the module's Host client.
type host struct {
	modulev1.UnimplementedHostServer
	t        testing.TB
	manifest sdk.Manifest
	call     func(context.Context, *modulev1.CallRequest) (*modulev1.CallResponse, error)

	mu            sync.Mutex
	published     []sdk.Event
	byID          map[string]sdk.Event
	logs          []*modulev1.LogRequest
	invalidations []sdk.Invalidation
	closed        bool // the test is ending: t must no longer be logged to
}

func newHost(t testing.TB, m sdk.Manifest, call func(context.Context, *modulev1.CallRequest) (*modulev1.CallResponse, error)) *host {
	if call == nil {
		call = notInstalled
	}
	return &host{t: t, manifest: m, call: call, byID: make(map[string]sdk.Event)}
}

// Publish stores the event as the core's outbox does: only types the
// manifest's "publishes" list allows, at most once per id, with increasing
// sequences.
func (f *host) Publish(_ context.Context, req *modulev1.PublishRequest) (*modulev1.PublishResponse, error) {
	allowed := slices.ContainsFunc(f.manifest.Publishes, func(p string) bool { return sdk.MatchEventType(p, req.GetType()) })
	if !allowed {
		return nil, status.Errorf(codes.PermissionDenied, "module %q may not publish %q: not in the manifest's publishes", f.manifest.Name, req.GetType())
	}
	data := req.GetData()
	if len(data) == 0 {
		data = []byte("null")
	}
	if !json.Valid(data) {
		return nil, status.Error(codes.InvalidArgument, "event data is not valid JSON")
	}
	if len(req.GetId()) > maxEventID {
		return nil, status.Errorf(codes.InvalidArgument, "event id is longer than %d characters", maxEventID)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if ev, ok := f.byID[req.GetId()]; ok { // only caller-chosen ids are looked up: "" is never stored
		return &modulev1.PublishResponse{Id: ev.ID, Sequence: ev.Sequence}, nil
	}
	ev := sdk.Event{
		ID:            req.GetId(),
		Type:          req.GetType(),
		Source:        f.manifest.Name,
		Sequence:      int64(len(f.published) + 1),
		Time:          time.Now().UTC(),
		Data:          data,
		RequestID:     req.GetRequestId(),
		CorrelationID: req.GetCorrelationId(),
	}
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	f.published = append(f.published, ev)
	f.byID[ev.ID] = ev
	return &modulev1.PublishResponse{Id: ev.ID, Sequence: ev.Sequence}, nil
}

// Call answers with Options.Call.
func (f *host) Call(ctx context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error) {
	return f.call(ctx, req)
}

// Log records the line and writes it to the test's log.
func (f *host) Log(_ context.Context, req *modulev1.LogRequest) (*modulev1.LogResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, req)
	if !f.closed {
		f.t.Logf("module %s: %s: %s %v request_id=%s", f.manifest.Name, req.GetLevel(), req.GetMessage(), req.GetAttrs(), req.GetRequestId())
	}
	return &modulev1.LogResponse{}, nil
}

// close stops the writing to the test's log: a module goroutine may still
// log after the test has ended, when testing forbids it.
func (f *host) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

func (f *host) events() []sdk.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.published)
}

func (f *host) logLines() []*modulev1.LogRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logs)
}

// notInstalled is the default answer to Host.Call: the core's answer when no
// module serves the path.
func notInstalled(_ context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error) {
	return nil, status.Errorf(codes.NotFound, "module %q serves no path %q", req.GetModule(), req.GetPath())
}

// errNotAuthenticator is the core's refusal of a credential call from a
// module without the "authenticator" capability.
func errNotAuthenticator(name string) error {
	return status.Errorf(codes.PermissionDenied, "module %q may not invalidate credentials: its manifest does not declare the %q capability", name, sdk.CapabilityAuthenticator)
}
