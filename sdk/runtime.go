package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sort"
	"sync"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk/wire"
)

// ErrNoHost is returned by Runtime calls that need the core before the module
// has been configured.
var ErrNoHost = errors.New("sdk: not connected to the host")

// Runtime is the module's view of the core: its configuration, and the
// services the core offers. It is safe for concurrent use.
type Runtime struct {
	manifest Manifest
	settings map[string]string
	database Database
	mode     string
	dataDir  string
	host     modulev1.HostClient
	logger   *slog.Logger

	mu            sync.RWMutex
	handlers      map[string]EventHandler
	health        func(context.Context) error
	onShutdown    []func(context.Context) error
	setupClosed   bool
	authenticator Authenticator
}

// Manifest returns the installed manifest. Its Version is the version the
// operator installed.
func (rt *Runtime) Manifest() Manifest { return rt.manifest }

// Setting returns the setting named key (the full environment name, e.g.
// "HELLO_GREETING"), or "" when unset.
func (rt *Runtime) Setting(key string) string { return rt.settings[key] }

// Settings returns a copy of every setting the core passed to the module.
func (rt *Runtime) Settings() map[string]string { return maps.Clone(rt.settings) }

// Database returns how to open the module's own database namespace.
func (rt *Runtime) Database() Database { return rt.database }

// Mode is "development" or "production".
func (rt *Runtime) Mode() string { return rt.mode }

// DataDir is a directory the module may keep files in.
func (rt *Runtime) DataDir() string { return rt.dataDir }

// Logger returns a logger whose lines go to the core's log under the module's
// name. Pass the request's context to the logging call (InfoContext) to tag
// the line with its request id.
func (rt *Runtime) Logger() *slog.Logger { return rt.logger }

// Subscribe registers the handler for one event type ("*" or "prefix.*"
// patterns allowed). It must be called during Setup. The manifest's
// "subscribes" list should name the same types so the core queues them while
// the module is down.
func (rt *Runtime) Subscribe(eventType string, h EventHandler) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.setupClosed {
		panic("sdk: Subscribe called after Setup returned")
	}
	rt.handlers[eventType] = h
}

// HealthCheck sets the function the core's health checks call. Default:
// healthy.
func (rt *Runtime) HealthCheck(fn func(context.Context) error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.health = fn
}

// OnShutdown registers fn to run when the core stops the module, in reverse
// order of registration.
func (rt *Runtime) OnShutdown(fn func(context.Context) error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.onShutdown = append(rt.onShutdown, fn)
}

// Publish publishes an event of type eventType with data marshalled to JSON.
// It returns the event id once the core has stored the event durably. The
// request id of ctx (see [RequestFrom]) travels with the event.
func (rt *Runtime) Publish(ctx context.Context, eventType string, data any) (string, error) {
	return rt.PublishWithID(ctx, "", eventType, data)
}

// PublishWithID is Publish with a caller-chosen event id: publishing the same
// id twice stores the event once.
func (rt *Runtime) PublishWithID(ctx context.Context, id, eventType string, data any) (string, error) {
	if rt.host == nil {
		return "", ErrNoHost
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("sdk: event data: %w", err)
	}
	info := RequestFrom(ctx)
	resp, err := rt.host.Publish(ctx, &modulev1.PublishRequest{
		Type: eventType, Data: raw, Id: id, RequestId: info.ID, CorrelationId: info.CorrelationID,
	})
	if err != nil {
		return "", fromStatus(err)
	}
	return resp.GetId(), nil
}

// Call makes a request to another module through the core. path is the full
// path on the target (prefix included) and may carry a query. The caller's
// principal and request ids travel with the call.
func (rt *Runtime) Call(ctx context.Context, module, method, path string, header http.Header, body []byte) (*CallResponse, error) {
	if rt.host == nil {
		return nil, ErrNoHost
	}
	head := wire.HeadFrom(ctx)
	resp, err := rt.host.Call(ctx, &modulev1.CallRequest{
		Module: module, Method: method, Path: path, Headers: wire.HeadersToProto(header), Body: body,
		RequestId: head.GetRequestId(), CorrelationId: head.GetCorrelationId(), CallToken: head.GetCallToken(),
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &CallResponse{Status: int(resp.GetStatus()), Header: wire.HeadersFromProto(resp.GetHeaders()), Body: resp.GetBody()}, nil
}

// subscriptions returns the registered event types, sorted.
func (rt *Runtime) subscriptions() []string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	types := make([]string, 0, len(rt.handlers))
	for t := range rt.handlers {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// handlerFor returns the handler for an event type: an exact registration
// first, then the longest matching pattern.
func (rt *Runtime) handlerFor(eventType string) EventHandler {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if h, ok := rt.handlers[eventType]; ok {
		return h
	}
	var best string
	var found EventHandler
	for pattern, h := range rt.handlers {
		if MatchEventType(pattern, eventType) && len(pattern) > len(best) {
			best, found = pattern, h
		}
	}
	return found
}
