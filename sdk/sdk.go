package sdk

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Version is the SDK's version, reported to the core in Describe.
const Version = "0.1.0"

// Module is what an author hands to [Serve].
type Module struct {
	// Routes declares the routes the module serves, with what the core must
	// enforce before a request reaches the module (roles, scopes, rate limits,
	// body size). Requests under the module's prefixes that match no declared
	// route are still forwarded, with no requirement attached. The core reads
	// them through Describe, which comes after Setup: Setup may still adjust
	// them from settings (the auth module sets its login rate limit so).
	Routes []Route
	// OpenAPI is the module's OpenAPI 3 fragment (JSON). Optional: without
	// it, the one [OpenAPIFragment] generates from Routes is served.
	OpenAPI []byte
	// Setup is called once, after the core has configured the module, and
	// returns the handler that serves every request. Register event handlers
	// and health checks on rt here. Required.
	Setup func(ctx context.Context, rt *Runtime) (http.Handler, error)
}

// Route is one declared route.
type Route struct {
	// Method is an HTTP method, or "*" for any.
	Method string
	// Path is the full path pattern, prefix included: "/hello/items/:id";
	// a final "*" segment matches the rest of the path.
	Path string
	// MinRole is the least role a caller needs ("viewer", "engineer",
	// "operator", "admin"); empty means no authentication is required.
	MinRole string
	// Scopes an API key must carry.
	Scopes []string
	// RateLimit limits calls to this route per client; nil means the core's
	// default.
	RateLimit *RateLimit
	// MaxBodyBytes overrides the core's request body limit: 0 keeps the
	// default, -1 means unlimited.
	MaxBodyBytes int64
	// Summary is a one-line description, used in the generated OpenAPI.
	Summary string
}

// RateLimit is a number of requests per period, counted per client IP. The
// period is whole seconds.
type RateLimit struct {
	Requests int
	Period   time.Duration
	// Key names the count: routes with the same key share one count per
	// client (the auth module's login, token, refresh and register routes
	// share one). Empty means the route's own count.
	Key string
}

// Event is one event delivered to a subscriber.
type Event struct {
	// ID is unique per event: handlers de-duplicate on it.
	ID string
	// Type is the event type, e.g. "outage.resolved".
	Type string
	// Source is the module that published it ("core" for the core's own).
	Source string
	// Sequence increases in delivery order.
	Sequence int64
	Time     time.Time
	// Data is the JSON payload.
	Data          json.RawMessage
	RequestID     string
	CorrelationID string
}

// Decode unmarshals the event's payload into v.
func (e Event) Decode(v any) error { return json.Unmarshal(e.Data, v) }

// EventHandler handles one event. Returning an error asks the core to deliver
// the same event again later; no later event reaches this module before it.
type EventHandler func(ctx context.Context, ev Event) error

// Database says how the module reaches its own database namespace.
type Database struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN opens the namespace: a SQLite file path with parameters, or a
	// Postgres URL whose search_path is the module's schema.
	DSN string
	// Schema is the Postgres schema; empty for SQLite.
	Schema string
}

// CallResponse is another module's answer to [Runtime.Call].
type CallResponse struct {
	Status int
	Header http.Header
	Body   []byte
}
