package sdk_test

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/chacc/chacc/sdk"
)

// A complete module: one public route, one route for operators, and an event
// handler. Built into a binary and packed with its module_meta.json, it is
// installed into a core with POST /modules/.
func ExampleServe() {
	sdk.Serve(sdk.Module{
		Routes: []sdk.Route{
			{Method: http.MethodGet, Path: "/notes/ping", Summary: "Liveness of the module."},
			{Method: http.MethodPost, Path: "/notes/reset", MinRole: "operator", Summary: "Forget every note."},
		},
		Setup: func(ctx context.Context, rt *sdk.Runtime) (http.Handler, error) {
			// module_meta.json lists "outage.resolved" under "subscribes".
			rt.Subscribe("outage.resolved", func(ctx context.Context, ev sdk.Event) error {
				var outage struct {
					ID string `json:"id"`
				}
				if err := ev.Decode(&outage); err != nil {
					return nil // a malformed event will not improve on retry
				}
				rt.Logger().InfoContext(ctx, "outage resolved", "outage", outage.ID, "event", ev.ID)
				return nil
			})

			mux := http.NewServeMux()
			mux.HandleFunc("GET /notes/ping", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"pong": true, "version": rt.Manifest().Version})
			})
			mux.HandleFunc("POST /notes/reset", func(w http.ResponseWriter, r *http.Request) {
				// The core has already checked the operator role; the
				// caller is known.
				p, _ := sdk.PrincipalFrom(r.Context())
				rt.Logger().InfoContext(r.Context(), "notes reset", "by", p.Subject)
				w.WriteHeader(http.StatusNoContent)
			})
			return mux, nil
		},
	})
}
