package main

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"go/format"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/archive"
)

// runCLI runs the command in-process and returns its output and exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(args, &out, &errb, func(k string) string { return env[k] })
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos []string
		wantErr bool
		json    bool
		server  string
	}{
		{name: "flags first", args: []string{"--json", "--server", "x", "hello"}, wantPos: []string{"hello"}, json: true, server: "x"},
		{name: "flags last", args: []string{"hello", "-json", "-server=x"}, wantPos: []string{"hello"}, json: true, server: "x"},
		{name: "flags between", args: []string{"a", "--json", "b"}, wantPos: []string{"a", "b"}, json: true},
		{name: "after --", args: []string{"--", "--json"}, wantPos: []string{"--json"}},
		{name: "unknown flag", args: []string{"hello", "--nope"}, wantErr: true},
		{name: "missing value", args: []string{"--server"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			j := fs.Bool("json", false, "")
			s := fs.String("server", "", "")
			c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
			pos, err := c.parseArgs(fs, tc.args)
			if tc.wantErr {
				require.Error(t, err)
				assert.Equal(t, exitUsage, exitCode(err, &bytes.Buffer{}))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantPos, pos)
			assert.Equal(t, tc.json, *j)
			assert.Equal(t, tc.server, *s)
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"module"},
		{"module", "frobnicate"},
		{"module", "show"},
		{"module", "show", "a", "b"},
		{"module", "list", "extra"},
		{"module", "list", "--bogus"},
		{"module", "install"},
		{"module", "install", filepath.Join(t.TempDir(), "missing.chacc")},
		{"module", "list", "--server", "ftp://example.com"},
		{"module", "sign", "x.chacc"},
		{"module", "sign", "--key", filepath.Join(t.TempDir(), "missing.key"), "x.chacc"},
		{"module", "pack"},
		{"module", "new"},
		{"module", "new", "Hello"},
		{"module", "new", "x"},
		{"module", "new", "health"}, // its prefix would be a core path
		{"serve", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, nil, args...)
			assert.Equal(t, exitUsage, code)
			assert.NotEmpty(t, stderr)
		})
	}
	stdout, _, code := runCLI(t, nil, "help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "Exit codes:")
	stdout, _, code = runCLI(t, nil, "module", "list", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "chacc module list")
}

// fakeCore answers every request with status and body, and records the
// requests' headers.
type fakeCore struct {
	mu      sync.Mutex
	headers []http.Header
	paths   []string
	status  int
	body    string
}

func (f *fakeCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Clone())
	f.paths = append(f.paths, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

func TestClientCredentialsAndExitCodes(t *testing.T) {
	fake := &fakeCore{status: 200, body: `{"modules":[]}`}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	// The token: rak_ is an API key, anything else a bearer token; the
	// environment is the default and --token overrides it.
	for _, tc := range []struct {
		name               string
		env                map[string]string
		args               []string
		wantKey, wantAuthz string
	}{
		{name: "no token", env: map[string]string{"CHACC_SERVER": srv.URL}},
		{name: "api key", env: map[string]string{"CHACC_SERVER": srv.URL, "CHACC_TOKEN": "rak_abc"}, wantKey: "rak_abc"},
		{name: "jwt", env: map[string]string{"CHACC_SERVER": srv.URL, "CHACC_TOKEN": "eyJ.x.y"}, wantAuthz: "Bearer eyJ.x.y"},
		{name: "flag wins", env: map[string]string{"CHACC_SERVER": "127.0.0.1:1", "CHACC_TOKEN": "rak_env"}, args: []string{"--server", srv.URL, "--token", "jwt"}, wantAuthz: "Bearer jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tc.env, append([]string{"module", "list"}, tc.args...)...)
			require.Equal(t, exitOK, code, stderr)
			assert.Equal(t, "No modules installed.\n", stdout)
			fake.mu.Lock()
			h := fake.headers[len(fake.headers)-1]
			fake.mu.Unlock()
			assert.Equal(t, tc.wantKey, h.Get("X-API-Key"))
			assert.Equal(t, tc.wantAuthz, h.Get("Authorization"))
		})
	}

	env := map[string]string{"CHACC_SERVER": srv.URL}
	fake.status, fake.body = 403, `{"detail":"Missing role.","error_code":"FORBIDDEN","request_id":"r1"}`
	_, stderr, code := runCLI(t, env, "module", "disable", "hello")
	assert.Equal(t, exitRefused, code)
	assert.Equal(t, "chacc: Missing role. (error_code FORBIDDEN, HTTP 403, request_id r1)\n", stderr)

	fake.status, fake.body = 502, `bad gateway`
	_, stderr, code = runCLI(t, env, "module", "enable", "hello")
	assert.Equal(t, exitUnreachable, code)
	assert.Contains(t, stderr, "HTTP 502: bad gateway")

	fake.status, fake.body = 500, `{"detail":"Internal error.","error_code":"INTERNAL_ERROR","request_id":"r2"}`
	_, stderr, code = runCLI(t, env, "module", "show", "hello")
	assert.Equal(t, exitUnreachable, code)
	assert.Contains(t, stderr, "Internal error. (error_code INTERNAL_ERROR, HTTP 500")

	fake.status, fake.body = 200, `{"message":"Module 'a b' uninstalled; its data was kept."}`
	stdout, _, code := runCLI(t, env, "module", "uninstall", "a b", "--purge")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "Module 'a b' uninstalled; its data was kept.\n", stdout)
	fake.mu.Lock()
	assert.Equal(t, "DELETE /modules/a%20b/uninstall?purge=true", fake.paths[len(fake.paths)-1])
	fake.mu.Unlock()

	// Nobody listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	_, stderr, code = runCLI(t, map[string]string{"CHACC_SERVER": "http://" + closed}, "module", "list")
	assert.Equal(t, exitUnreachable, code)
	assert.Contains(t, stderr, "cannot reach the core at http://"+closed)
}

func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	stdout, stderr, code := runCLI(t, nil, "module", "keygen", "-o", prefix)
	require.Equal(t, exitOK, code, stderr)

	info, err := os.Stat(prefix + ".key")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	pubText, err := os.ReadFile(prefix + ".pub")
	require.NoError(t, err)
	assert.Regexp(t, `^ed25519:[A-Za-z0-9+/]{43}=\n$`, string(pubText))
	pub, err := archive.ParsePublicKey(string(pubText))
	require.NoError(t, err)
	assert.Contains(t, stdout, "key id:      "+archive.KeyID(pub)+"\n")

	// Never overwrites.
	_, stderr, code = runCLI(t, nil, "module", "keygen", "-o", prefix)
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, stderr, "exists")

	// Pack a module for this platform, sign it in place, verify it.
	mod := filepath.Join(dir, "mod")
	exe, err := os.Executable()
	require.NoError(t, err)
	exeData, err := os.ReadFile(exe)
	require.NoError(t, err)
	plat := runtime.GOOS + "-" + runtime.GOARCH
	require.NoError(t, os.MkdirAll(filepath.Join(mod, "bin", plat), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "bin", plat, "hello"), exeData, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "module_meta.json"), []byte(`{"name":"hello","version":"1.0.0"}`), 0o644))
	file := filepath.Join(dir, "hello.chacc")
	_, stderr, code = runCLI(t, nil, "module", "pack", mod, "-o", file)
	require.Equal(t, exitOK, code, stderr)

	stdout, stderr, code = runCLI(t, nil, "module", "sign", file, "--key", prefix+".key")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, "signed "+file+" with key "+archive.KeyID(pub)+"\n", stdout)
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".hello.chacc.tmp-*"))
	assert.Empty(t, leftovers, "the temporary file is renamed into place")

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	a, err := archive.Read(bytes.NewReader(data), int64(len(data)), archive.Limits{}, runtime.GOOS, runtime.GOARCH)
	require.NoError(t, err)
	sig, err := a.VerifySignature(archive.Trust{Keys: []ed25519.PublicKey{pub}, Required: true})
	require.NoError(t, err)
	assert.Equal(t, archive.Signature{Signed: true, KeyID: archive.KeyID(pub), PublicKey: archive.FormatPublicKey(pub), Trusted: true}, sig)

	// Signing what is not an archive fails and leaves the file alone.
	junk := filepath.Join(dir, "junk.chacc")
	require.NoError(t, os.WriteFile(junk, []byte("junk"), 0o644))
	_, stderr, code = runCLI(t, nil, "module", "sign", "--key", prefix+".key", junk)
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, stderr, "Archive is not a valid zip file.")
	after, _ := os.ReadFile(junk)
	assert.Equal(t, "junk", string(after))
}

func TestNewModule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-mod")
	stdout, stderr, code := runCLI(t, nil, "module", "new", "my-mod", "-o", dir)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, `Created module "my-mod"`)

	var names []string
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{".gitignore", "Makefile", "main.go", "main_test.go", "module_meta.json"}, names)

	meta, err := os.ReadFile(filepath.Join(dir, "module_meta.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"name":"my-mod","display_name":"My Mod","version":"0.1.0","description":"The my-mod module.","base_path_prefix":"/my-mod"}`, string(meta))

	for _, f := range []string{"main.go", "main_test.go"} {
		src, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		formatted, err := format.Source(src)
		require.NoError(t, err, f)
		assert.Equal(t, string(formatted), string(src), "%s is gofmt'd", f)
		assert.Contains(t, string(src), `"/my-mod/hello"`)
	}
	mk, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	require.NoError(t, err)
	assert.Contains(t, string(mk), "NAME    := my-mod\n")

	// A folder that is not empty is left alone.
	_, stderr, code = runCLI(t, nil, "module", "new", "my-mod", "-o", dir)
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, stderr, "exists and is not empty")
}
