// Command hello is the example chacc module, and the template for writing
// one. It is written only against the SDK, as any third-party module is:
//
//   - main.go (this file) declares the routes and wires the module in Setup;
//   - handlers.go serves HTTP with echo and handles the module's events;
//   - store.go keeps the module's data in its own database namespace, with
//     versioned migrations;
//   - hello_test.go tests it all in-process with sdktest, no core needed;
//   - module_meta.json is the manifest packed beside the binary.
//
// The core runs the binary; run by hand, it prints a notice and exits.
package main

import (
	"context"
	"net/http"

	"github.com/chacc/chacc/sdk"
)

// eventType is the one event type the module publishes and subscribes to;
// module_meta.json lists it under both "publishes" and "subscribes", without
// which the core refuses the publish and delivers nothing.
const eventType = "hello.event"

// maxEventBody bounds the body of POST /hello/events. The core enforces it
// (MaxBodyBytes below) and the handler too, so that the limit holds however
// the module is reached.
const maxEventBody = 4 << 10

// routes declares every route the module serves, with full paths (the
// manifest's base_path_prefix included). The core uses the declarations to
// enforce roles, scopes, rate limits and body limits before a request
// reaches the module, and to document the routes in its OpenAPI.
var routes = []sdk.Route{
	{Method: http.MethodGet, Path: "/hello/ping", Summary: "Answers pong and the installed version."},
	// -1 lifts the core's body limit: the echo streams any size.
	{Method: http.MethodPost, Path: "/hello/echo", MaxBodyBytes: -1, Summary: "Streams the request body back."},
	{Method: http.MethodGet, Path: "/hello/sse", Summary: "Sends n server-sent tick events, interval_ms apart."},
	{Method: http.MethodPost, Path: "/hello/events", MaxBodyBytes: maxEventBody, Summary: "Publishes a hello.event."},
	{Method: http.MethodGet, Path: "/hello/events", Summary: "Lists the ids received in hello.event events."},
	{Method: http.MethodGet, Path: "/hello/relay", Summary: "Calls /hello/ping through the core (module-to-module call)."},
}

func main() {
	sdk.Serve(module())
}

// module is the module as the core runs it; tests run the same value.
func module() sdk.Module {
	return sdk.Module{Routes: routes, Setup: setup}
}

// setup runs once the core has configured the module: it opens and migrates
// the database, registers the event handler and the health check, and
// returns the HTTP handler.
func setup(ctx context.Context, rt *sdk.Runtime) (http.Handler, error) {
	st, err := openStore(ctx, rt.Database())
	if err != nil {
		return nil, err
	}
	rt.OnShutdown(func(context.Context) error { return st.Close() })
	rt.HealthCheck(st.Ping)

	a := &api{rt: rt, store: st}
	rt.Subscribe(eventType, a.handleEvent)
	return a.handler(), nil
}
