package sdktest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdktest"
)

// greeter is a module with one route, which publishes an event per greeting
// and counts the greetings it is told about.
func greeter() sdk.Module {
	return sdk.Module{
		Routes: []sdk.Route{{Method: http.MethodGet, Path: "/greeter/hello", MinRole: "viewer"}},
		Setup: func(_ context.Context, rt *sdk.Runtime) (http.Handler, error) {
			var greeted atomic.Int64
			rt.Subscribe("greeter.greeted", func(context.Context, sdk.Event) error {
				greeted.Add(1)
				return nil
			})
			mux := http.NewServeMux()
			mux.HandleFunc("GET /greeter/hello", func(w http.ResponseWriter, r *http.Request) {
				p, _ := sdk.PrincipalFrom(r.Context())
				if _, err := rt.Publish(r.Context(), "greeter.greeted", map[string]string{"who": p.Subject}); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				fmt.Fprintf(w, "Hello, %s! (%d before you)", p.DisplayName, greeted.Load())
			})
			return mux, nil
		},
	}
}

func ExampleStart() {
	t := &testing.T{} // provided by the test function

	h := sdktest.Start(t, greeter(), sdktest.Options{
		Manifest: sdk.Manifest{
			Name: "greeter", Version: "1.0.0",
			Publishes: []string{"greeter.greeted"}, Subscribes: []string{"greeter.greeted"},
		},
	})

	resp := h.Do(httptest.NewRequest(http.MethodGet, "/greeter/hello", nil),
		sdktest.AsPrincipal(sdk.Principal{Subject: "u1", DisplayName: "Ada", Roles: []string{"viewer"}}))
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
}

func ExampleHarness_DeliverPublished() {
	t := &testing.T{} // provided by the test function
	h := sdktest.Start(t, greeter(), sdktest.Options{
		Manifest: sdk.Manifest{
			Name: "greeter", Version: "1.0.0",
			Publishes: []string{"greeter.greeted"}, Subscribes: []string{"greeter.greeted"},
		},
	})

	// A request publishes an event; the fake host keeps it until the test
	// delivers it, to every subscriber (here the module itself).
	h.Do(httptest.NewRequest(http.MethodGet, "/greeter/hello", nil))
	for _, ev := range h.Published() {
		fmt.Println(ev.Type, string(ev.Data))
	}
	if err := h.DeliverPublished(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func ExampleHarness_URL() {
	t := &testing.T{} // provided by the test function
	h := sdktest.Start(t, greeter(), sdktest.Options{
		Manifest: sdk.Manifest{Name: "greeter", Version: "1.0.0", Publishes: []string{"greeter.*"}},
	})

	// A real HTTP client, for streamed responses and cancellation.
	resp, err := http.Get(h.URL() + "/greeter/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("X-Request-ID") != "")
}
