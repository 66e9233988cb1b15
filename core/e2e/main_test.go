// Package e2e drives the real chacc binary and real module processes over
// HTTP. TestMain builds everything into a temporary directory, so
// `go test ./...` needs nothing prebuilt. Every test runs on SQLite, and on
// Postgres when DATABASE_URL is set (each server gets a fresh database).
package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/store/storetest"
)

var (
	chaccBin string
	helloV1  string // hello 0.1.0 archive
	helloV2  string // hello 0.2.0 archive (same code, newer manifest)
	tinyExec []byte // a small real executable, for hostile archives
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "chacc-e2e-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e build:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func build(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	gobuild := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	chaccBin = filepath.Join(dir, "chacc")
	if err := gobuild(chaccBin, "./cmd/chacc"); err != nil {
		return err
	}
	plat := runtime.GOOS + "-" + runtime.GOARCH
	for _, v := range []struct {
		version string
		dst     *string
	}{{"0.1.0", &helloV1}, {"0.2.0", &helloV2}} {
		stage := filepath.Join(dir, "hello-"+v.version)
		if err := os.MkdirAll(filepath.Join(stage, "bin", plat), 0o755); err != nil {
			return err
		}
		exe := filepath.Join(stage, "bin", plat, "hello")
		if err := gobuild(exe, "./sdk/examples/hello"); err != nil {
			return err
		}
		man, err := os.ReadFile(filepath.Join(root, "sdk/examples/hello/module_meta.json"))
		if err != nil {
			return err
		}
		var meta map[string]any
		if err := json.Unmarshal(man, &meta); err != nil {
			return err
		}
		meta["version"] = v.version
		man, _ = json.Marshal(meta)
		if err := os.WriteFile(filepath.Join(stage, "module_meta.json"), man, 0o644); err != nil {
			return err
		}
		*v.dst = filepath.Join(dir, "hello-"+v.version+".chacc")
		f, err := os.Create(*v.dst)
		if err != nil {
			return err
		}
		if _, err := archive.Pack(stage, f); err != nil {
			return err
		}
		f.Close()
	}
	// A small real executable for this platform.
	src := filepath.Join(dir, "tiny.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		return err
	}
	tiny := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", tiny, src)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build tiny: %v\n%s", err, b)
	}
	tinyExec, err = os.ReadFile(tiny)
	return err
}

// server is one running chacc core.
type server struct {
	t       *testing.T
	url     string
	dir     string
	env     []string
	cmd     *exec.Cmd
	log     *syncWriter
	backend storetest.Backend
	exited  chan struct{}
}

// eachBackend runs fn as a subtest on every database backend.
func eachBackend(t *testing.T, fn func(t *testing.T, b storetest.Backend)) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// startServer starts a core with its own directories and database.
func startServer(t *testing.T, b storetest.Backend, extraEnv ...string) *server {
	t.Helper()
	s := &server{t: t, dir: t.TempDir(), backend: b}
	env := baseEnv(s.dir)
	if b.Name == "postgres" {
		env = append(env, "DATABASE_URL="+storetest.FreshPostgres(t))
	}
	return s.launch(env, extraEnv)
}

// startPeer starts a second core on the same database as s, with
// directories of its own: a cluster of two.
func startPeer(t *testing.T, s *server, extraEnv ...string) *server {
	t.Helper()
	p := &server{t: t, dir: t.TempDir(), backend: s.backend}
	env := baseEnv(p.dir)
	for _, kv := range s.env {
		if strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	return p.launch(env, extraEnv)
}

// baseEnv is a core's environment with its directories under dir.
func baseEnv(dir string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"CHACC_DATA_DIR=" + filepath.Join(dir, "data"),
		"CHACC_MODULES_INSTALLED_DIR=" + filepath.Join(dir, "installed"),
		"CHACC_MODULES_LOADED_DIR=" + filepath.Join(dir, "loaded"),
		"CHACC_LOG_LEVEL=debug",
		"CHACC_EVENT_POLL_INTERVAL=200ms",
		"CHACC_RECONCILE_INTERVAL=200ms",
		// The default per-IP limit (100/min) would throttle the suite, which
		// sends everything from 127.0.0.1; rate-limit tests set their own.
		"CHACC_RATE_LIMIT=off",
	}
}

func (s *server) launch(env, extraEnv []string) *server {
	t := s.t
	s.env = append(env, extraEnv...)
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", tail(s.logText(), 80))
		}
	})
	return s
}

// start (re)starts the process on a fresh port, same directories and database.
func (s *server) start() {
	t := s.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	s.url = "http://" + addr
	if s.log == nil {
		s.log = &syncWriter{w: &bytes.Buffer{}}
	}
	s.cmd = exec.Command(chaccBin, "serve")
	s.cmd.Env = append(append([]string(nil), s.env...), "CHACC_ADDR="+addr)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	require.NoError(t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.exited)
	waitFor(t, 20*time.Second, "core /health", func() bool {
		resp, err := http.Get(s.url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stop ends the core gracefully (SIGTERM) and waits.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// kill ends the core with SIGKILL and waits.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// syncWriter serializes the process's stdout and stderr into one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (s *server) logText() string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.w.String()
}

// assertLogged waits up to 5 s for the server's log to contain substr: the
// core writes a line before it answers, but the test reads its stderr
// through a pipe, which may not have carried the line over yet.
func (s *server) assertLogged(t *testing.T, substr string) bool {
	t.Helper()
	return assert.Eventually(t, func() bool { return strings.Contains(s.logText(), substr) },
		5*time.Second, 10*time.Millisecond, "the server's log never said %q", substr)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

func (s *server) do(method, path string, body io.Reader, header ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	require.NoError(s.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *server) get(path string) response { s.t.Helper(); return s.do("GET", path, nil) }

// upload posts an archive as the multipart field "file".
func (s *server) upload(filename string, data []byte, query string) response {
	s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", filename)
	require.NoError(s.t, err)
	_, _ = fw.Write(data)
	require.NoError(s.t, mw.Close())
	return s.do("POST", "/modules/"+query, &buf, "Content-Type", mw.FormDataContentType())
}

func (s *server) uploadFile(path string) response {
	s.t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(s.t, err)
	return s.upload(filepath.Base(path), data, "")
}

// modulePID returns the pid of a running module.
func (s *server) modulePID(name string) int {
	s.t.Helper()
	r := s.get("/modules/" + name)
	require.Equal(s.t, 200, r.status, "%s", r.body)
	pid, _ := r.json(s.t)["pid"].(float64)
	return int(pid)
}

// dirEntries lists a server directory, ignoring nothing.
func (s *server) dirEntries(name string) []string {
	entries, _ := os.ReadDir(filepath.Join(s.dir, name))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers kill(0); read its state.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// zipOf builds a zip archive from name → content; a nil content with a name
// ending in "/" is a directory.
func zipOf(t *testing.T, files ...zipFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Deflate}
		h.SetMode(f.mode)
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write(f.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

type zipFile struct {
	name string
	data []byte
	mode os.FileMode
}
