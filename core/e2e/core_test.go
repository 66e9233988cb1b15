package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

func TestCoreEndpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b, "CHACC_MAX_BODY_BYTES=1024")

		r := s.get("/")
		assert.Equal(t, 200, r.status)
		assert.Equal(t, "Welcome to the ChaCC API Backbone! Check /docs for API modules.", r.json(t)["message"])

		r = s.get("/health")
		assert.Equal(t, 200, r.status)
		assert.Equal(t, map[string]any{"status": "healthy", "mode": "development", "checks": map[string]any{"api": "ok"}}, r.json(t))

		r = s.get("/health/live")
		assert.Equal(t, map[string]any{"status": "alive", "mode": "development", "checks": map[string]any{"process": "running"}}, r.json(t))

		r = s.get("/health/ready")
		assert.Equal(t, 200, r.status)
		assert.Equal(t, "ok", r.json(t)["checks"].(map[string]any)["database"])

		// Request ids: generated, or echoed when safe.
		r = s.get("/health")
		assert.Len(t, r.header.Get("X-Request-ID"), 32)
		assert.Equal(t, r.header.Get("X-Request-ID"), r.header.Get("X-Correlation-ID"))
		r = s.do("GET", "/health", nil, "X-Request-ID", "abc-123", "X-Correlation-ID", "corr-9")
		assert.Equal(t, "abc-123", r.header.Get("X-Request-ID"))
		assert.Equal(t, "corr-9", r.header.Get("X-Correlation-ID"))
		r = s.do("GET", "/health", nil, "X-Request-ID", "bad id\twith<script>")
		assert.NotContains(t, r.header.Get("X-Request-ID"), "<")

		// One error shape, carrying the request id.
		r = s.do("GET", "/nothing/here", nil, "X-Request-ID", "req-404")
		assert.Equal(t, 404, r.status)
		assert.Equal(t, map[string]any{"detail": "Not found.", "error_code": "NOT_FOUND", "request_id": "req-404"}, r.json(t))

		r = s.get("/modules/nope")
		assert.Equal(t, 404, r.status)
		assert.Equal(t, "Module not found.", r.json(t)["detail"])
		for _, path := range []string{"/modules/nope/enable", "/modules/nope/disable"} {
			assert.Equal(t, 404, s.do("POST", path, nil).status, path)
		}
		assert.Equal(t, 404, s.do("DELETE", "/modules/nope/uninstall", nil).status)

		// Body over CHACC_MAX_BODY_BYTES.
		r = s.do("POST", "/modules/nope/enable", bytes.NewReader(make([]byte, 4096)))
		assert.Equal(t, 413, r.status)
		assert.Equal(t, "PAYLOAD_TOO_LARGE", r.json(t)["error_code"])

		r = s.get("/modules/")
		assert.Equal(t, map[string]any{"modules": []any{}}, r.json(t))

		r = s.get("/audit?limit=abc")
		assert.Equal(t, 400, r.status)
	})
}

func TestLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)

		r := s.uploadFile(helloV1)
		require.Equal(t, 201, r.status, "%s", r.body)
		assert.Equal(t, "Module 'hello' installed and running.", r.json(t)["message"])

		r = s.get("/hello/ping")
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, map[string]any{"pong": true, "version": "0.1.0"}, r.json(t))
		assert.NotEmpty(t, r.header.Get("X-Request-ID"))

		r = s.get("/modules/")
		mods := r.json(t)["modules"].([]any)
		require.Len(t, mods, 1)
		m := mods[0].(map[string]any)
		assert.Equal(t, "hello", m["name"])
		assert.Equal(t, true, m["is_enabled"])
		assert.Equal(t, "running", m["state"])
		assert.Equal(t, "/hello", m["base_path_prefix"])

		r = s.get("/modules/hello")
		m = r.json(t)
		assert.Greater(t, m["pid"], float64(0))
		assert.NotEmpty(t, m["routes"])
		assert.Equal(t, []any{"/hello"}, m["mounted_prefixes"])
		assert.True(t, processAlive(int(m["pid"].(float64))))

		r = s.get("/health/ready")
		assert.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, "ok", r.json(t)["checks"].(map[string]any)["module:hello"])

		// Same version again: 409; with force: reinstalled.
		r = s.uploadFile(helloV1)
		assert.Equal(t, 409, r.status, "%s", r.body)
		data, _ := os.ReadFile(helloV1)
		r = s.upload("hello-0.1.0.chacc", data, "?force=true")
		assert.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, 200, s.get("/hello/ping").status)

		// Disable: the prefix is gone at once.
		pid := s.modulePID("hello")
		r = s.do("POST", "/modules/hello/disable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, 404, s.get("/hello/ping").status)
		assert.Equal(t, "stopped", s.get("/modules/hello").json(t)["state"])
		waitFor(t, 5*1e9, "disabled module process to exit", func() bool { return !processAlive(pid) })
		r = s.do("POST", "/modules/hello/disable", nil)
		assert.Equal(t, "Module 'hello' is already disabled.", r.json(t)["message"])

		r = s.do("POST", "/modules/hello/enable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, 200, s.get("/hello/ping").status)
		r = s.do("POST", "/modules/hello/enable", nil)
		assert.Equal(t, "Module 'hello' is already enabled.", r.json(t)["message"])

		// Uninstall: archive, extracted files, record and process gone.
		pid = s.modulePID("hello")
		r = s.do("DELETE", "/modules/hello/uninstall", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, 404, s.get("/hello/ping").status)
		assert.Equal(t, 404, s.get("/modules/hello").status)
		assert.Empty(t, s.dirEntries("installed"))
		assert.Empty(t, s.dirEntries("loaded"))
		assert.False(t, processAlive(pid))

		// Every change is in the audit log, newest first.
		r = s.get("/audit?module=hello")
		var actions []string
		for _, e := range r.json(t)["entries"].([]any) {
			e := e.(map[string]any)
			actions = append(actions, e["action"].(string)+":"+e["outcome"].(string))
			assert.Equal(t, "127.0.0.1", e["client_ip"])
		}
		assert.Equal(t, []string{"uninstall:ok", "enable:ok", "disable:ok", "upgrade:ok", "install:failed", "install:ok"}, actions)
	})
}

func TestHostileArchivesAreRefused(t *testing.T) {
	plat := "bin/" + runtime.GOOS + "-" + runtime.GOARCH
	manifest := []byte(`{"name":"evil","version":"1.0.0"}`)
	exe := func() zipFile { return zipFile{name: plat + "/evil", data: tinyExec, mode: 0o755} }
	bomb := make([]byte, 64<<20) // zeros compress ~1000:1
	tests := []struct {
		name     string
		filename string
		data     func(t *testing.T) []byte
		status   int
		detail   string
	}{
		{"wrong extension", "evil.zip", func(t *testing.T) []byte { return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}) }, 400, "Only .chacc module packages are allowed."},
		{"not a zip", "evil.chacc", func(t *testing.T) []byte { return []byte("hello, not a zip") }, 400, "Archive is not a valid zip file."},
		{"no manifest", "evil.chacc", func(t *testing.T) []byte { return zipOf(t, exe()) }, 400, "Archive must contain 'module_meta.json'."},
		{"no name", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", []byte(`{"version":"1.0.0"}`), 0o644}, exe())
		}, 400, "'name' field is missing in 'module_meta.json'."},
		{"bad version", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", []byte(`{"name":"evil","version":"one"}`), 0o644}, exe())
		}, 400, ""},
		{"path traversal", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, exe(), zipFile{"../../escape.txt", []byte("x"), 0o644})
		}, 400, ""},
		{"absolute path", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, exe(), zipFile{"/tmp/escape.txt", []byte("x"), 0o644})
		}, 400, ""},
		{"symlink", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, exe(), zipFile{"link", []byte("/etc/passwd"), fs.ModeSymlink | 0o777})
		}, 400, ""},
		{"device file", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, exe(), zipFile{"dev", nil, fs.ModeDevice | 0o644})
		}, 400, ""},
		{"no binary for this platform", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, zipFile{"bin/plan9-mips/evil", tinyExec, 0o755})
		}, 400, ""},
		{"binary is not an executable", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, zipFile{plat + "/evil", []byte("#!/bin/sh\nrm -rf /\n"), 0o755})
		}, 400, ""},
		{"reserved prefix", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", []byte(`{"name":"evil","version":"1.0.0","base_path_prefix":"/modules"}`), 0o644}, exe())
		}, 400, ""},
		{"decompression bomb", "evil.chacc", func(t *testing.T) []byte {
			return zipOf(t, zipFile{"module_meta.json", manifest, 0o644}, exe(), zipFile{"bomb", bomb, 0o644})
		}, 413, ""},
		{"upload over the size cap", "evil.chacc", func(t *testing.T) []byte {
			b := make([]byte, 3<<20)
			_, _ = rand.Read(b)
			return b
		}, 413, ""},
	}
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b, "CHACC_MAX_UPLOAD_BYTES=2MiB", "CHACC_MAX_UNPACKED_BYTES=48MiB")
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := s.upload(tc.filename, tc.data(t), "")
				require.Equal(t, tc.status, r.status, "%s", r.body)
				body := r.json(t)
				if tc.detail != "" {
					assert.Equal(t, tc.detail, body["detail"])
				}
				assert.NotEmpty(t, body["error_code"])
				assert.NotEmpty(t, body["request_id"])
				// Nothing written anywhere.
				assert.Empty(t, s.dirEntries("installed"))
				assert.Empty(t, s.dirEntries("loaded"))
				assert.Equal(t, []any{}, s.get("/modules/").json(t)["modules"])
				_, err := os.Stat("/tmp/escape.txt")
				assert.True(t, os.IsNotExist(err))
			})
		}
		r := s.get("/audit?action=install")
		for _, e := range r.json(t)["entries"].([]any) {
			assert.Equal(t, "failed", e.(map[string]any)["outcome"])
		}
	})
}

func TestNotAMultipartUpload(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	r := s.do("POST", "/modules/", strings.NewReader("{}"), "Content-Type", "application/json")
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "INVALID_UPLOAD", r.json(t)["error_code"])
}

// CHACC_PPROF_ADDR serves the runtime profiles on a listener of their own,
// never on the API's; a core that cannot listen there does not start.
func TestPprof(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	s := startServer(t, storetest.Backends(t)[0], "CHACC_PPROF_ADDR="+addr)

	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "serve")
	resp, err = http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "heap profile")
	assert.True(t, s.assertLogged(t, "runtime profiles served"))

	assert.Equal(t, 404, s.get("/debug/pprof/").status, "not on the API's listener")

	// The address is taken now: a second core refuses to start.
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chaccBin, "serve")
	cmd.Env = append(baseEnv(dir), "CHACC_ADDR=127.0.0.1:0", "CHACC_PPROF_ADDR="+addr)
	out, err := cmd.CombinedOutput()
	assert.Error(t, err)
	assert.NoError(t, ctx.Err(), "the second core started and had to be killed")
	assert.Contains(t, string(out), "pprof")
}
