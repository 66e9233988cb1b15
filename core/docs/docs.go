// Package docs serves Swagger UI at /docs over the core's /openapi.json. The
// Swagger UI files are embedded in the binary (assets/, copied from the npm
// package swagger-ui-dist by scripts/update-swagger-ui.sh; the version is in
// assets/VERSION), so the page works offline and loads nothing from a CDN.
package docs

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html init.js assets
var files embed.FS

// SwaggerUIVersion is the version of the embedded swagger-ui-dist.
var SwaggerUIVersion = func() string {
	b, _ := files.ReadFile("assets/VERSION")
	return strings.TrimSpace(string(b))
}()

// csp allows only this origin; Swagger UI needs inline styles and data:
// images for its icons.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
	"script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"

// Handler serves GET /docs (the page) and /docs/<file> (its assets); any
// other path under /docs is 404.
func Handler() http.Handler {
	modTime := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/docs")
		name = strings.TrimPrefix(name, "/")
		switch {
		case name == "" || name == "index.html":
			name = "index.html"
		case name == "init.js":
		case path.Clean(name) == name && !strings.Contains(name, "/"):
			name = "assets/" + name
		default:
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(name, "assets/") {
			h.Set("Cache-Control", "public, max-age=86400")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, path.Base(name), modTime, bytes.NewReader(b))
	})
}
