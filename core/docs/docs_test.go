package docs

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHandler(t *testing.T) {
	h := Handler()
	get := func(path string) (int, string, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
	}
	for _, tc := range []struct {
		name, path, ctype, contains string
		status                      int
	}{
		{name: "page", path: "/docs", status: 200, ctype: "text/html", contains: `src="/docs/swagger-ui-bundle.js"`},
		{name: "page with slash", path: "/docs/", status: 200, ctype: "text/html", contains: `id="swagger-ui"`},
		{name: "initializer", path: "/docs/init.js", status: 200, ctype: "javascript", contains: `url: "/openapi.json"`},
		{name: "bundle", path: "/docs/swagger-ui-bundle.js", status: 200, ctype: "javascript", contains: "SwaggerUIBundle"},
		{name: "styles", path: "/docs/swagger-ui.css", status: 200, ctype: "text/css", contains: ".swagger-ui"},
		{name: "icon", path: "/docs/favicon-32x32.png", status: 200, ctype: "image/png"},
		{name: "licence", path: "/docs/LICENSE", status: 200, contains: "Apache License"},
		{name: "unknown", path: "/docs/nope.js", status: 404},
		{name: "outside assets", path: "/docs/../docs.go", status: 404},
		{name: "nested", path: "/docs/assets/swagger-ui.css", status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ctype, body := get(tc.path)
			assert.Equal(t, tc.status, status)
			assert.Contains(t, ctype, tc.ctype)
			assert.Contains(t, body, tc.contains)
		})
	}

	// Nothing on the page comes from elsewhere, and the validator badge
	// (which would send the document to validator.swagger.io) is off.
	_, _, page := get("/docs")
	assert.NotContains(t, page, "http")
	_, _, init := get("/docs/init.js")
	assert.Contains(t, init, "validatorUrl: null")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/docs", nil))
	assert.True(t, strings.HasPrefix(rec.Header().Get("Content-Security-Policy"), "default-src 'self'"))
	assert.Regexp(t, `^5\.\d+\.\d+$`, SwaggerUIVersion)
}
