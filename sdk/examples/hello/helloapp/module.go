package helloapp

import (
	"context"
	"net/http"

	"github.com/chacc/chacc/sdk"
)

// EventType is the one event type the module publishes and subscribes to;
// module_meta.json lists it under both "publishes" and "subscribes", without
// which the core refuses the publish and delivers nothing.
const EventType = "hello.event"

// maxEventBody bounds the body of POST /hello/events, and maxItemBody that
// of POST /hello/items. The core enforces them (MaxBodyBytes in [Routes]) and
// the handlers too, so that the limits hold however the module is reached.
const (
	maxEventBody = 4 << 10
	maxItemBody  = 4 << 10
)

// Routes declares every route the module serves, with full paths (the
// manifest's base_path_prefix included). The core uses the declarations to
// enforce roles, scopes, rate limits and body limits before a request
// reaches the module, and to document the routes in its OpenAPI.
var Routes = []sdk.Route{
	{Method: http.MethodGet, Path: "/hello/ping", Summary: "Answers pong and the installed version."},
	// -1 lifts the core's body limit: the echo streams any size.
	{Method: http.MethodPost, Path: "/hello/echo", MaxBodyBytes: -1, Summary: "Streams the request body back."},
	{Method: http.MethodGet, Path: "/hello/sse", Summary: "Sends n server-sent tick events, interval_ms apart (stamp=true: with their send time)."},
	{Method: http.MethodPost, Path: "/hello/events", MaxBodyBytes: maxEventBody, Summary: "Publishes a hello.event."},
	{Method: http.MethodGet, Path: "/hello/events", Summary: "Lists the ids received in hello.event events."},
	{Method: http.MethodPost, Path: "/hello/items", MaxBodyBytes: maxItemBody, Summary: "Stores an item and returns it with its id."},
	{Method: http.MethodGet, Path: "/hello/items/:id", Summary: "Returns one item, read by its id."},
	{Method: http.MethodGet, Path: "/hello/relay", Summary: "Calls /hello/ping (or /hello/whoami with ?to=whoami) through the core, as the caller (module-to-module call)."},
	{Method: http.MethodGet, Path: "/hello/whoami", MinRole: "viewer", Summary: "Returns the authenticated caller."},
}

// Module is the module as the core runs it (main passes it to [sdk.Serve]);
// tests run the same value with sdktest.
func Module() sdk.Module {
	return sdk.Module{Routes: Routes, Setup: setup}
}

// setup runs once the core has configured the module: it opens and migrates
// the database, registers the event handler and the health check, and
// returns the HTTP handler.
func setup(ctx context.Context, rt *sdk.Runtime) (http.Handler, error) {
	st, err := OpenStore(ctx, rt.Database())
	if err != nil {
		return nil, err
	}
	rt.OnShutdown(func(context.Context) error { return st.Close() })
	rt.HealthCheck(st.Ping)

	a := NewAPI(rt, st)
	rt.Subscribe(EventType, a.HandleEvent)
	return a.Handler(), nil
}
