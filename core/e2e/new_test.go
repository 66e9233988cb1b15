package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// TestNewModuleBuildsPacksAndInstalls takes `chacc module new` from the
// generated folder to a signed archive installed through the CLI: the
// folder's own test passes, its Makefile builds and packs it, and its route
// answers.
func TestNewModuleBuildsPacksAndInstalls(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	// Inside the repository, so that the folder builds in its Go module; under
	// testdata, so that ./... patterns never pick it up.
	root, err := filepath.Abs("testdata")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(root, 0o755))
	tmp, err := os.MkdirTemp(root, "new-")
	require.NoError(t, err)
	t.Cleanup(func() {
		os.RemoveAll(tmp)
		os.Remove(root) // only if empty
	})
	dir := filepath.Join(tmp, "greeter")

	r := runChacc(t, "", nil, "module", "new", "greeter", "-o", dir)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `Created module "greeter" in `+dir)
	// The name follows the manifest's rules.
	for _, bad := range []string{"Greeter", "g", "9lives", "audit"} {
		r := runChacc(t, "", nil, "module", "new", bad, "-o", filepath.Join(tmp, "bad"))
		assert.Equal(t, 2, r.code, "%s: %s", bad, r.stderr)
		assert.NoDirExists(t, filepath.Join(tmp, "bad"))
	}

	runMake := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("make", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "make %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	out := runMake("test")
	assert.Regexp(t, `(?m)^ok\s+github.com/chacc/chacc/core/e2e/testdata/new-\w+/greeter\b`, out)

	key := keygen(t, "author")
	trustedKey, err := os.ReadFile(key.pub)
	require.NoError(t, err)
	out = runMake("pack", "CHACC="+chaccBin, "KEY="+key.priv)
	assert.Contains(t, out, "signed dist/greeter-0.1.0.chacc with key "+key.id)
	file := filepath.Join(dir, "dist", "greeter-0.1.0.chacc")
	require.FileExists(t, file)

	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startedServer(t, b, "CHACC_TRUSTED_KEYS="+strings.TrimSpace(string(trustedKey)), "CHACC_REQUIRE_SIGNED=true")
		r := s.cli("module", "install", file)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stdout, "Module 'greeter' installed and running.")
		assert.Equal(t, []string{key.id, "(trusted)"}, tableRows(r.stdout)[2][6:])

		resp := s.get("/greeter/hello")
		require.Equal(t, 200, resp.status, "%s", resp.body)
		var got map[string]string
		require.NoError(t, json.Unmarshal(resp.body, &got))
		assert.Equal(t, map[string]string{"message": "Hello from greeter!", "version": "0.1.0"}, got)
	})
}
