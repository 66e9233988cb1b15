package helloapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/sdk"
)

// Host is what the handlers need from the core. *[sdk.Runtime] is one; a
// program that mounts the handler without the core passes its own.
type Host interface {
	// Manifest is the installed manifest (its Version is reported by ping).
	Manifest() sdk.Manifest
	// Logger logs under the module's name.
	Logger() *slog.Logger
	// Publish stores an event durably and returns its id.
	Publish(ctx context.Context, EventType string, data any) (string, error)
	// Call makes a request to a module through the core.
	Call(ctx context.Context, module, method, path string, header http.Header, body []byte) (*sdk.CallResponse, error)
}

var _ Host = (*sdk.Runtime)(nil)

// API serves the module's routes and handles its events.
type API struct {
	rt    Host
	store *Store
}

// NewAPI returns the module's API over host and store.
func NewAPI(host Host, store *Store) *API {
	return &API{rt: host, store: store}
}

// Handler returns the echo instance serving every route in [Routes]. Echo
// sees the full path the client called, prefix included.
func (a *API) Handler() http.Handler {
	e := echo.New()
	e.HTTPErrorHandler = a.handleError
	e.GET("/hello/ping", a.ping)
	e.POST("/hello/echo", a.echoBody)
	e.GET("/hello/sse", a.sse)
	e.POST("/hello/events", a.publish)
	e.GET("/hello/events", a.listEvents)
	e.POST("/hello/items", a.createItem)
	e.GET("/hello/items/:id", a.getItem)
	e.GET("/hello/relay", a.relay)
	e.GET("/hello/whoami", a.whoami)
	return e
}

// ping answers that the module is up, with the installed version.
func (a *API) ping(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"pong": true, "version": a.rt.Manifest().Version})
}

// whoami returns the caller as the core authenticated it. The route declares
// MinRole "viewer", so the core has already refused anonymous callers when an
// authenticator is enabled; with none enabled the caller is anonymous.
func (a *API) whoami(c echo.Context) error {
	p, ok := sdk.PrincipalFrom(c.Request().Context())
	if !ok {
		return c.JSON(http.StatusOK, map[string]any{"authenticated": false})
	}
	return c.JSON(http.StatusOK, map[string]any{
		"authenticated": true,
		"subject":       p.Subject,
		"display_name":  p.DisplayName,
		"roles":         p.Roles,
		"scopes":        p.Scopes,
		"method":        p.Method,
		"attributes":    p.Attributes,
	})
}

// relay calls this module's own ping through the core, the way a module
// calls another: the core routes the call and passes the caller's identity and
// request ids along.
func (a *API) relay(c echo.Context) error {
	target := "/hello/ping"
	if c.QueryParam("to") == "whoami" {
		// The call acts for this request's caller: the core passes their
		// principal on and holds the call to whoami's requirement.
		target = "/hello/whoami"
	}
	resp, err := a.rt.Call(c.Request().Context(), "hello", http.MethodGet, target, nil, nil)
	if err != nil {
		return &httpError{Status: http.StatusBadGateway, Detail: "Call through the core failed: " + err.Error()}
	}
	return c.JSON(http.StatusOK, map[string]any{"status": resp.Status, "response": json.RawMessage(resp.Body)})
}

// echoBody streams the request body back as it arrives, whatever its size: a
// chunk is written and flushed as soon as it is read, so neither side holds
// the whole body.
func (a *API) echoBody(c echo.Context) error {
	req, res := c.Request(), c.Response()
	contentType := req.Header.Get(echo.HeaderContentType)
	if contentType == "" {
		contentType = echo.MIMEOctetStream
	}
	res.Header().Set(echo.HeaderContentType, contentType)
	res.WriteHeader(http.StatusOK)

	buf := make([]byte, 32<<10)
	for {
		n, err := req.Body.Read(buf)
		if n > 0 {
			if _, werr := res.Write(buf[:n]); werr != nil {
				return nil // the client is gone
			}
			res.Flush()
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
	}
}

// Limits of GET /hello/sse.
const (
	defaultTicks  = 3
	maxTicks      = 10000
	maxIntervalMS = 10000
)

// sse sends n "tick" server-sent events, interval_ms apart, flushing each
// one so that it reaches the client at once; with stamp=true each carries
// the time it was sent. It stops early when the client
// goes away: the request's context is cancelled then.
func (a *API) sse(c echo.Context) error {
	n, err := intQuery(c, "n", defaultTicks, maxTicks)
	if err != nil {
		return err
	}
	intervalMS, err := intQuery(c, "interval_ms", 0, maxIntervalMS)
	if err != nil {
		return err
	}
	interval := time.Duration(intervalMS) * time.Millisecond
	stamp := c.QueryParam("stamp") == "true"

	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "text/event-stream")
	res.Header().Set(echo.HeaderCacheControl, "no-cache")
	res.WriteHeader(http.StatusOK)
	res.Flush()

	ctx := c.Request().Context()
	for i := 1; i <= n; i++ {
		if i > 1 && interval > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if stamp {
			// The send time lets a client on the same machine measure the
			// latency of each event (the benchmarks do).
			_, err = fmt.Fprintf(res, "event: tick\nid: %d\ndata: {\"n\": %d, \"sent_unix_ns\": %d}\n\n", i, i, time.Now().UnixNano())
		} else {
			_, err = fmt.Fprintf(res, "event: tick\nid: %d\ndata: {\"n\": %d}\n\n", i, i)
		}
		if err != nil {
			return nil // the client is gone
		}
		res.Flush()
	}
	return nil
}

// intQuery returns the query parameter name as an integer from 0 to max, or
// def when it is absent.
func intQuery(c echo.Context, name string, def, max int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, invalid(fmt.Sprintf("%s must be an integer from 0 to %d.", name, max))
	}
	return n, nil
}

// helloEvent is the payload of a hello.event.
type helloEvent struct {
	ID string `json:"id"`
}

// validID is what an id in a hello.event may be.
var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

const invalidIDDetail = "id must be 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'."

// publish publishes a hello.event carrying the posted id. The core has
// stored the event durably when Publish returns; delivery to subscribers,
// this module included, follows.
func (a *API) publish(c echo.Context) error {
	var in helloEvent
	body := http.MaxBytesReader(c.Response(), c.Request().Body, maxEventBody)
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE", Detail: "The body is too large."}
		}
		return invalid(`The body must be a JSON object: {"id": "..."}.`)
	}
	if !validID.MatchString(in.ID) {
		return invalid(invalidIDDetail)
	}
	eventID, err := a.rt.Publish(c.Request().Context(), EventType, in)
	if err != nil {
		return fmt.Errorf("publish %s: %w", EventType, err)
	}
	return c.JSON(http.StatusAccepted, map[string]string{"event_id": eventID, "id": in.ID})
}

// listEvents lists the ids received, in the order received.
func (a *API) listEvents(c echo.Context) error {
	ids, err := a.store.IDs(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ids": ids, "count": len(ids)})
}

// HandleEvent records the id a hello.event carries. Delivery is at least
// once, so the same event may come again: recording is idempotent. An error
// makes the core deliver the event again later, so it is returned only for
// what a retry can fix (the database); a malformed event is logged and
// acknowledged, as it would fail forever and hold back every later event.
func (a *API) HandleEvent(ctx context.Context, ev sdk.Event) error {
	var data helloEvent
	if err := ev.Decode(&data); err != nil || !validID.MatchString(data.ID) {
		a.rt.Logger().WarnContext(ctx, "malformed hello.event ignored", "event", ev.ID, "source", ev.Source)
		return nil
	}
	if err := a.store.Record(ctx, data.ID, ev.ID); err != nil {
		return fmt.Errorf("record id %s: %w", data.ID, err)
	}
	return nil
}

// item is an item as the API shows it.
type item struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// createItem stores the posted item and answers 201 with its id.
func (a *API) createItem(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, maxItemBody)
	if err := json.NewDecoder(body).Decode(&in); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &httpError{Status: http.StatusRequestEntityTooLarge, Code: "PAYLOAD_TOO_LARGE", Detail: "The body is too large."}
		}
		return invalid(`The body must be a JSON object: {"name": "..."}.`)
	}
	if in.Name == "" || len(in.Name) > maxItemName {
		return invalid(fmt.Sprintf("name must be 1 to %d bytes.", maxItemName))
	}
	it, err := a.store.CreateItem(c.Request().Context(), in.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, item{ID: it.ID, Name: it.Name, CreatedAt: it.CreatedAt})
}

// getItem reads one item by its primary key.
func (a *API) getItem(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return invalid("id must be a positive integer.")
	}
	it, err := a.store.Item(c.Request().Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &httpError{Status: http.StatusNotFound, Code: "NOT_FOUND", Detail: "Item not found."}
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, item{ID: it.ID, Name: it.Name, CreatedAt: it.CreatedAt})
}

// httpError is an error answered with its own status, in the chacc error
// shape.
type httpError struct {
	Status int
	Code   string
	Detail string
}

func (e *httpError) Error() string { return e.Detail }

// invalid is a 400 for a request that breaks the API's rules.
func invalid(detail string) error {
	return &httpError{Status: http.StatusBadRequest, Code: "VALIDATION_ERROR", Detail: detail}
}

// errorBody is the one error shape of chacc, the core's and every module's.
type errorBody struct {
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code"`
	RequestID string `json:"request_id"`
}

// handleError renders every error a handler returns, and echo's own (404,
// 405), in the chacc error shape, with the request id the core assigned.
// Other errors are logged and shown to the client only as "Internal error.".
func (a *API) handleError(err error, c echo.Context) {
	ctx := c.Request().Context()
	if c.Response().Committed {
		// A streamed answer broke off: too late for a status, so log it.
		a.rt.Logger().WarnContext(ctx, "request failed after the response started", "error", err.Error())
		return
	}
	he, ok := errors.AsType[*httpError](err)
	if !ok {
		if ee, isEcho := errors.AsType[*echo.HTTPError](err); isEcho {
			he = &httpError{Status: ee.Code, Code: errorCode(ee.Code), Detail: fmt.Sprint(ee.Message) + "."}
		} else {
			a.rt.Logger().ErrorContext(ctx, "request failed", "error", err.Error(), "path", c.Request().URL.Path)
			he = &httpError{Status: http.StatusInternalServerError, Code: "INTERNAL_ERROR", Detail: "Internal error."}
		}
	}
	if err := c.JSON(he.Status, errorBody{Detail: he.Detail, ErrorCode: he.Code, RequestID: sdk.RequestFrom(ctx).ID}); err != nil {
		a.rt.Logger().WarnContext(ctx, "writing the error response failed", "error", err.Error())
	}
}

// errorCode names an HTTP status in UPPER_SNAKE: 404 is "NOT_FOUND".
func errorCode(status int) string {
	return strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}
