package e2e

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// openAPI fetches /openapi.json and checks it with kin-openapi.
func (s *server) openAPI() *openapi3.T {
	s.t.Helper()
	r := s.get("/openapi.json")
	require.Equal(s.t, 200, r.status, "%s", r.body)
	assert.Equal(s.t, "application/json", r.header.Get("Content-Type"))
	d, err := openapi3.NewLoader().LoadFromData(r.body)
	require.NoError(s.t, err)
	require.NoError(s.t, d.Validate(s.t.Context()), "%s", r.body)
	return d
}

func getOp(d *openapi3.T, path string) *openapi3.Operation {
	if item := d.Paths.Value(path); item != nil {
		return item.Get
	}
	return nil
}

func tagOf(d *openapi3.T, name string) *openapi3.Tag {
	for _, tg := range d.Tags {
		if tg.Name == name {
			return tg
		}
	}
	return nil
}

func TestOpenAPIFollowsLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)

		d := s.openAPI()
		for _, p := range []string{"/", "/health", "/health/ready", "/modules/", "/modules/{name}/enable", "/audit", "/openapi.json", "/metrics"} {
			assert.NotNil(t, d.Paths.Value(p), p)
		}
		assert.Nil(t, d.Paths.Value("/hello/ping"))
		assert.Contains(t, d.Components.SecuritySchemes, "bearerAuth")
		assert.Contains(t, d.Components.SecuritySchemes, "apiKeyAuth")

		installHello(t, s)
		d = s.openAPI()
		ping := getOp(d, "/hello/ping")
		require.NotNil(t, ping, "paths: %v", d.Paths.Keys())
		assert.Equal(t, []string{"Hello"}, ping.Tags)
		assert.Equal(t, "Answers pong and the installed version.", ping.Summary)
		assert.Nil(t, ping.Security)
		require.NotNil(t, tagOf(d, "Hello"))
		assert.Contains(t, tagOf(d, "Hello").Description, "0.1.0")
		item := getOp(d, "/hello/items/{id}")
		require.NotNil(t, item)
		assert.Equal(t, "id", item.Parameters[0].Value.Name)
		who := getOp(d, "/hello/whoami")
		require.NotNil(t, who)
		require.NotNil(t, who.Security)
		assert.Len(t, *who.Security, 2)
		assert.Equal(t, "viewer", who.Extensions["x-chacc-min-role"])

		r := s.do("POST", "/modules/hello/disable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		d = s.openAPI()
		assert.Nil(t, d.Paths.Value("/hello/ping"), "disabled: gone at once")
		assert.Nil(t, tagOf(d, "Hello"))

		r = s.do("POST", "/modules/hello/enable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.NotNil(t, getOp(s.openAPI(), "/hello/ping"), "enabled: back at once")

		r = s.uploadFile(helloV2)
		require.Equal(t, 200, r.status, "%s", r.body)
		d = s.openAPI()
		require.NotNil(t, tagOf(d, "Hello"))
		assert.Contains(t, tagOf(d, "Hello").Description, "0.2.0", "upgraded: the new version's document")

		r = s.do("DELETE", "/modules/hello/uninstall", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		d = s.openAPI()
		assert.Nil(t, d.Paths.Value("/hello/ping"), "uninstalled: gone")
		assert.Len(t, d.Tags, 2, "only the core's tags are left")
	})
}

// archiveWith returns the archive at path with one more file.
func archiveWith(t *testing.T, path, name string, data []byte) []byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	var files []zipFile
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		files = append(files, zipFile{name: f.Name, data: b, mode: f.Mode()})
	}
	return zipOf(t, append(files, zipFile{name: name, data: data, mode: 0o644})...)
}

func TestOpenAPIFromArchive(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		fragment := `{
		  "openapi": "3.0.3", "info": {"title": "hello", "version": "0.1.0"},
		  "paths": {
		    "/hello/items/{id}": {"get": {"operationId": "getItem", "summary": "One item, with its schema.",
		      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
		      "responses": {"200": {"description": "The item.",
		        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}}}},
		    "/elsewhere": {"get": {"responses": {"200": {"description": "not hello's"}}}}
		  },
		  "components": {"schemas": {"Item": {"type": "object", "properties": {"id": {"type": "string"}}}}}
		}`
		r := s.upload("hello-0.1.0.chacc", archiveWith(t, helloV1, "openapi.json", []byte(fragment)), "")
		require.Equal(t, 201, r.status, "%s", r.body)

		d := s.openAPI()
		item := getOp(d, "/hello/items/{id}")
		require.NotNil(t, item)
		assert.Equal(t, "One item, with its schema.", item.Summary, "the archive's document wins over the generated one")
		assert.Equal(t, "hello.getItem", item.OperationID)
		assert.Equal(t, []string{"Hello"}, item.Tags)
		assert.Equal(t, "#/components/schemas/hello.Item", item.Responses.Status(200).Value.Content.Get("application/json").Schema.Ref)
		assert.Contains(t, d.Components.Schemas, "hello.Item")
		assert.Nil(t, d.Paths.Value("/elsewhere"), "outside the module's prefix: dropped")
		s.assertLogged(t, "/elsewhere")
		// Declared routes the document leaves out are still there.
		require.NotNil(t, getOp(d, "/hello/ping"))
		assert.Equal(t, "Answers pong and the installed version.", getOp(d, "/hello/ping").Summary)
	})
}

// metricLine finds the sample line of name with exactly labels (in the
// exposition's sorted order) and returns its value, "" when absent.
func metricValue(text, name, labels string) string {
	prefix := name + "{" + labels + "} "
	if labels == "" {
		prefix = name + " "
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return v
		}
	}
	return ""
}

func TestMetricsAfterTraffic(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		for range 3 {
			require.Equal(t, 200, s.get("/hello/ping").status)
		}
		itemStatus := s.get("/hello/items/does-not-exist").status
		assert.GreaterOrEqual(t, itemStatus, 400)
		assert.Equal(t, 404, s.get("/hello/no/such/route").status)
		r := s.do("POST", "/hello/events", strings.NewReader(`{"id":"m1"}`), "Content-Type", "application/json")
		require.Less(t, r.status, 300, "%s", r.body)

		r = s.get("/metrics")
		require.Equal(t, 200, r.status)
		text := string(r.body)
		assert.Equal(t, "3", metricValue(text, "chacc_http_requests_total", `code="200",method="GET",module="hello",route="/hello/ping"`), "\n%s", grep(text, "chacc_http"))
		assert.Equal(t, "1", metricValue(text, "chacc_http_requests_total", fmt.Sprintf(`code="%d",method="GET",module="hello",route="/hello/items/:id"`, itemStatus)))
		assert.Equal(t, "1", metricValue(text, "chacc_http_requests_total", `code="404",method="GET",module="hello",route="unmatched"`))
		assert.Equal(t, "1", metricValue(text, "chacc_http_requests_total", `code="201",method="POST",module="core",route="/modules/"`))
		assert.Equal(t, "3", metricValue(text, "chacc_http_request_duration_seconds_count", `method="GET",module="hello",route="/hello/ping"`))
		assert.NotContains(t, text, `route="/hello/items/does-not-exist"`, "never the raw path")
		assert.NotContains(t, text, "chacc_http_request_errors_total{", "no 5xx yet")

		assert.Equal(t, "1", metricValue(text, "chacc_module_state", `module="hello",state="running"`))
		assert.Equal(t, "0", metricValue(text, "chacc_module_state", `module="hello",state="crashed"`))
		assert.Equal(t, "0", metricValue(text, "chacc_module_restarts_total", `module="hello"`))
		// The hello.event may be being delivered: no exact count.
		assert.NotEmpty(t, metricValue(text, "chacc_module_inflight_requests", `module="hello"`))
		rss := metricValue(text, "chacc_module_rss_bytes", `module="hello"`)
		require.NotEmpty(t, rss, "\n%s", grep(text, "chacc_module"))
		var rssBytes float64
		_, err := fmt.Sscan(rss, &rssBytes)
		require.NoError(t, err)
		assert.Greater(t, rssBytes, float64(1<<20), "a Go process has more than 1 MiB resident")
		assert.NotEmpty(t, metricValue(text, "chacc_module_cpu_seconds_total", `module="hello"`))
		assert.NotEmpty(t, metricValue(text, "chacc_events_outbox_depth", ""))
		assert.NotEmpty(t, metricValue(text, "chacc_events_delivery_lag", `subscriber="hello"`))
		assert.NotEmpty(t, metricValue(text, "go_goroutines", ""))

		// Bytes that are not UTF-8, which HTTP allows (a path that unescapes
		// to one, obs-text in a header), reach the module and get its answer,
		// as in-process (the bridge once answered 503).
		r = s.get("/hello/items/%E9")
		assert.Equal(t, 400, r.status, "%s", r.body)
		assert.Equal(t, "VALIDATION_ERROR", r.json(t)["error_code"])
		r = s.do("GET", "/hello/ping", nil, "X-Name", "caf\xe9")
		assert.Equal(t, 200, r.status, "%s", r.body)

		// Disabled: stopped, and no process to measure.
		pid := s.modulePID("hello")
		r = s.do("POST", "/modules/hello/disable", nil)
		require.Equal(t, 200, r.status)
		text = string(s.get("/metrics").body)
		assert.Equal(t, "1", metricValue(text, "chacc_module_state", `module="hello",state="stopped"`))
		assert.Empty(t, metricValue(text, "chacc_module_rss_bytes", `module="hello"`), "no process, no RSS (pid %d)", pid)
	})
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestRequestLogsCarryRequestID(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b, "CHACC_MODE=production")
		installHello(t, s)
		r := s.do("GET", "/hello/ping", nil, "X-Request-ID", "e2e-log-rid-1")
		require.Equal(t, 200, r.status)
		r = s.do("GET", "/nothing/here", nil, "X-Request-ID", "e2e-log-rid-2")
		require.Equal(t, 404, r.status)
		s.stop() // flush: every line is out once the process has exited

		var access []map[string]any
		var moduleLines int
		for _, line := range strings.Split(strings.TrimSpace(s.logText()), "\n") {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec), "production logs are JSON lines; got %q", line)
			require.Contains(t, rec, "level")
			require.Contains(t, rec, "msg")
			if rec["module"] == "hello" {
				moduleLines++
			}
			if rec["msg"] == "request" {
				access = append(access, rec)
			}
		}
		assert.Positive(t, moduleLines, "module lines carry module=hello")
		byPath := map[string]map[string]any{}
		for _, a := range access {
			require.NotEmpty(t, a["request_id"], "every access line has a request id: %v", a)
			byPath[fmt.Sprint(a["path"])] = a
		}
		require.Contains(t, byPath, "/hello/ping")
		assert.Equal(t, "e2e-log-rid-1", byPath["/hello/ping"]["request_id"])
		require.Contains(t, byPath, "/nothing/here")
		assert.Equal(t, "e2e-log-rid-2", byPath["/nothing/here"]["request_id"])
		// No line carries a request id twice (explicit and from the
		// context).
		twice := regexp.MustCompile(`"request_id":.*"request_id":`)
		assert.Empty(t, twice.FindAllString(s.logText(), -1))
	})
}
