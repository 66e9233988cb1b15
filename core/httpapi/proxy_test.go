package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/logging"
)

func TestCanonicalPath(t *testing.T) {
	for raw, ok := range map[string]bool{
		"/hello/ping":            true,
		"/api/v1/outages/":       true,
		"/":                      true,
		"/hello/items/a%20b":     true,
		"/x/items/a%2Fb":         false,
		"/x/items/a%2fb":         false,
		"/x/items/1%2F/secret":   false,
		"/x/items//secret":       false,
		"//hello/ping":           false,
		"/hello/./ping":          false,
		"/hello/../modules/":     false,
		"/hello/%2e%2e/modules/": false,
		"/x/items/a%5Cb":         false,
		"/hello/ping//":          false,
		"/hello/a%20b%2Fc":       false,
		"/hello/%2E%2E/x":        false,
		"/hello/a%5cb":           false,
		"/hello/a%25":            true,
		"/hello/a%252f":          true,
		"/hello/a\\b":            false,
		"/hello/.x/..y":          true,
	} {
		u, err := url.ParseRequestURI(raw)
		require.NoError(t, err, raw)
		err = canonicalPath(u)
		if ok {
			assert.NoError(t, err, raw)
		} else {
			assert.Error(t, err, raw)
		}
	}
}

func TestClientKey(t *testing.T) {
	assert.Equal(t, "203.0.113.7", clientKey("203.0.113.7"))
	assert.Equal(t, clientKey("2001:db8:1:2::1"), clientKey("2001:db8:1:2:ffff::9"), "one /64, one count")
	assert.NotEqual(t, clientKey("2001:db8:1:2::1"), clientKey("2001:db8:1:3::1"))
	assert.Equal(t, "2001:db8:1:2::/64", clientKey("2001:db8:1:2::1"))
}

// TestLogContext: a handler behind logContext logs with the request's id
// (the client's X-Request-ID, when safe); one without it is not handed a
// copy of its request.
func TestLogContext(t *testing.T) {
	e := echo.New()
	e.Pre(requestIDs)
	var withID, without string
	e.GET("/logged", func(c echo.Context) error {
		withID = logging.RequestID(c.Request().Context())
		return c.NoContent(http.StatusNoContent)
	}, logContext)
	e.GET("/plain", func(c echo.Context) error {
		without = logging.RequestID(c.Request().Context())
		return c.NoContent(http.StatusNoContent)
	})
	for _, path := range []string{"/logged", "/plain"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("X-Request-ID", "rid-1")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, http.StatusNoContent, rec.Code)
		assert.Equal(t, "rid-1", rec.Header().Get("X-Request-ID"))
	}
	assert.Equal(t, "rid-1", withID)
	assert.Empty(t, without)
}
