// Package sdk is everything a chacc module author needs.
//
// A module is an ordinary program that calls [Serve] from main. It declares
// its routes, and builds its http.Handler in Setup once the core has
// configured it with settings and a database:
//
//	func main() {
//		sdk.Serve(sdk.Module{
//			Routes: []sdk.Route{{Method: "GET", Path: "/hello/ping"}},
//			Setup: func(ctx context.Context, rt *sdk.Runtime) (http.Handler, error) {
//				mux := http.NewServeMux()
//				mux.HandleFunc("GET /hello/ping", func(w http.ResponseWriter, r *http.Request) {
//					fmt.Fprintf(w, `{"pong":true}`)
//				})
//				return mux, nil
//			},
//		})
//	}
//
// The core runs the program as a separate process (hashicorp/go-plugin over
// gRPC), mounts its routes under the manifest's prefixes, and forwards each
// request, body streamed both ways. Handlers see the full path the client
// called. The authenticated caller and the request ids are in the request's
// context: [PrincipalFrom], [RequestFrom]. As with net/http, which serves
// the requests of a connection on one goroutine, a handler's goroutine then
// serves other requests: profiling labels it sets are reset after it, but a
// handler that calls runtime.LockOSThread must unlock before it returns.
//
// Through the [Runtime] a module publishes events ([Runtime.Publish]), handles
// the events it subscribes to ([Runtime.Subscribe]; delivery is at least once,
// in order, so handlers must be idempotent on [Event.ID]), calls other modules
// through the core ([Runtime.Call]) and logs into the core's log
// ([Runtime.Logger]).
//
// A second after Setup, a module gives back what starting it used and
// serving does not: the garbage of package initialization and Setup, and
// (on Linux) its mappings of the executable's code and constant data, which
// stay in the page cache and come back on first use. An idle module so
// keeps resident little more than what it serves with.
//
// Package sdk/sdktest runs a module in-process with a fake host, for tests.
package sdk
