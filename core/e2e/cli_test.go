package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// cliResult is what one run of the chacc binary printed and how it ended.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runChacc runs the chacc binary in dir (the test's working directory when
// empty) with env on top of PATH and HOME (no CHACC_SERVER or CHACC_TOKEN
// leaks in from the test's environment).
func runChacc(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(chaccBin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code}
}

// cli runs the binary against s.
func (s *server) cli(args ...string) cliResult {
	s.t.Helper()
	return runChacc(s.t, "", []string{"CHACC_SERVER=" + s.url}, args...)
}

// startedServer is startServer, then waits until the core has read its
// modules: before that, /modules answers 503 (STARTING).
func startedServer(t *testing.T, b storetest.Backend, extraEnv ...string) *server {
	t.Helper()
	s := startServer(t, b, extraEnv...)
	s.waitStarted()
	return s
}

// waitStarted waits until /modules stops answering 503.
func (s *server) waitStarted() {
	s.t.Helper()
	waitFor(s.t, 30*time.Second, "the core to finish starting", func() bool {
		resp, err := http.Get(s.url + "/modules/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusServiceUnavailable
	})
}

// closedAddr returns a local address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// tableRows splits a table into its rows' fields.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			rows = append(rows, strings.Fields(line))
		}
	}
	return rows
}

func TestCLIOperatesARunningCore(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startedServer(t, b)

		r := s.cli("module", "list")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "No modules installed.\n", r.stdout)

		// install: the message and the module's row.
		r = s.cli("module", "install", helloV1)
		require.Equal(t, 0, r.code, r.stderr)
		rows := tableRows(r.stdout)
		require.Len(t, rows, 3, r.stdout)
		assert.Equal(t, "Module 'hello' installed and running.", strings.Join(rows[0], " "))
		assert.Equal(t, []string{"NAME", "VERSION", "ENABLED", "STATE", "PID", "PREFIXES", "SIGNATURE"}, rows[1])
		assert.Equal(t, []string{"hello", "0.1.0", "yes", "running"}, rows[2][:4])
		assert.Equal(t, []string{"/hello", "unsigned"}, rows[2][5:])
		assert.Equal(t, 200, s.get("/hello/ping").status)

		// list: a table, or the server's JSON.
		r = s.cli("module", "list")
		require.Equal(t, 0, r.code, r.stderr)
		rows = tableRows(r.stdout)
		require.Len(t, rows, 2, r.stdout)
		assert.Equal(t, "NAME", rows[0][0])
		assert.Equal(t, []string{"hello", "0.1.0", "yes", "running"}, rows[1][:4])
		pid := s.modulePID("hello")
		assert.Equal(t, strconv.Itoa(pid), rows[1][4])

		r = s.cli("module", "list", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var list struct {
			Modules []map[string]any `json:"modules"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &list), r.stdout)
		require.Len(t, list.Modules, 1)
		assert.Equal(t, "hello", list.Modules[0]["name"])
		assert.Equal(t, map[string]any{"signed": false, "key_id": "", "trusted": false}, list.Modules[0]["signature"])

		// show: key-value lines and the routes; --json after the name.
		r = s.cli("module", "show", "hello")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "state:           running\n")
		assert.Contains(t, r.stdout, "pid:             "+strconv.Itoa(pid)+"\n")
		assert.Contains(t, r.stdout, "signature:       unsigned\n")
		assert.Regexp(t, `\n  GET +/hello/ping +- +Answers pong`, r.stdout)

		r = s.cli("module", "show", "hello", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var shown map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown), r.stdout)
		assert.Equal(t, "hello", shown["name"])
		assert.Equal(t, float64(pid), shown["pid"])

		// The server refuses: exit 1, its detail and error_code on stderr.
		r = s.cli("module", "install", helloV1)
		assert.Equal(t, 1, r.code)
		assert.Empty(t, r.stdout)
		assert.Contains(t, r.stderr, "Module 'hello' version 0.1.0 is already installed")
		assert.Contains(t, r.stderr, "error_code MODULE_EXISTS, HTTP 409")

		r = s.cli("module", "install", "--force", helloV1)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "Module 'hello' upgraded from 0.1.0 to 0.1.0 and running.")

		r = s.cli("module", "show", "nope")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stderr, "Module not found. (error_code MODULE_NOT_FOUND, HTTP 404")

		// disable, enable.
		r = s.cli("module", "disable", "hello")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "Module 'hello' disabled and stopped.\n", r.stdout)
		assert.Equal(t, 404, s.get("/hello/ping").status)
		r = s.cli("module", "list")
		assert.Equal(t, []string{"hello", "0.1.0", "no", "stopped", "-", "-", "unsigned"}, tableRows(r.stdout)[1])

		r = s.cli("module", "enable", "hello", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var enabled map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &enabled), r.stdout)
		assert.Equal(t, "Module 'hello' enabled and running.", enabled["message"])
		assert.Equal(t, 200, s.get("/hello/ping").status)

		// Upgrade, then uninstall with --purge.
		r = s.cli("module", "install", helloV2)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "upgraded from 0.1.0 to 0.2.0")
		r = s.cli("module", "uninstall", "hello", "--purge")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "Module 'hello' uninstalled and its data deleted.\n", r.stdout)
		assert.Equal(t, 404, s.get("/modules/hello").status)
		r = s.cli("module", "uninstall", "hello")
		assert.Equal(t, 1, r.code)
		assert.Contains(t, r.stderr, "MODULE_NOT_FOUND")

		// --server overrides CHACC_SERVER.
		r = runChacc(t, "", []string{"CHACC_SERVER=http://" + closedAddr(t)}, "module", "list", "--server", s.url)
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, "No modules installed.\n", r.stdout)
	})
}

func TestCLIExitCodes(t *testing.T) {
	// 2: usage errors, before any request.
	for _, args := range [][]string{
		{"module", "frobnicate"},
		{"module", "show"},
		{"module", "enable", "a", "b"},
		{"module", "list", "--bogus"},
		{"module", "install", filepath.Join(t.TempDir(), "missing.chacc")},
		{"module", "new", "Not_Valid"},
	} {
		r := runChacc(t, "", nil, args...)
		assert.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "chacc: ", args)
	}

	// 3: nobody listens.
	addr := closedAddr(t)
	for _, args := range [][]string{
		{"module", "list"},
		{"module", "show", "hello"},
		{"module", "install", helloV1},
		{"module", "enable", "hello"},
		{"module", "disable", "hello"},
		{"module", "uninstall", "hello", "--purge"},
	} {
		r := runChacc(t, "", []string{"CHACC_SERVER=" + addr}, args...)
		assert.Equal(t, 3, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "cannot reach the core at http://"+addr, args)
	}

	// The documented codes are in `chacc help`.
	r := runChacc(t, "", nil, "help")
	require.Equal(t, 0, r.code)
	for _, want := range []string{"0  success", "1  the server refused", "2  usage error", "3  the server could not be reached"} {
		assert.Contains(t, r.stdout, want)
	}

	// The existing commands still work.
	r = runChacc(t, "", nil, "version")
	assert.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "chacc "), r.stdout)
}
