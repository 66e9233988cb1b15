package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// TestDisableDuringBoot disables a module while the core is still starting
// it: the disable waits for the start and wins.
func TestDisableDuringBoot(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		s.stop()
		s.start()
		r := s.do("POST", "/modules/hello/disable", nil)
		require.Equal(t, 200, r.status, "%s", r.body)
		time.Sleep(500 * time.Millisecond) // room for a stray start to mount
		assert.Equal(t, 404, s.get("/hello/ping").status)
		st := s.get("/modules/hello").json(t)
		assert.Equal(t, false, st["is_enabled"])
		assert.Nil(t, st["pid"], "a disabled module has no process")
	})
}

// TestUpgradeKeepsADisabledModuleDisabled: an upload changes the version,
// not the operator's choice.
func TestUpgradeKeepsADisabledModuleDisabled(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	installHello(t, s)
	require.Equal(t, 200, s.do("POST", "/modules/hello/disable", nil).status)
	r := s.uploadFile(helloV2)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, "Module 'hello' upgraded from 0.1.0 to 0.2.0; it stays disabled.", r.json(t)["message"])
	assert.Equal(t, 404, s.get("/hello/ping").status)
	st := s.get("/modules/hello").json(t)
	assert.Equal(t, "0.2.0", st["version"])
	assert.Equal(t, false, st["is_enabled"])
	require.Equal(t, 200, s.do("POST", "/modules/hello/enable", nil).status)
	assert.Equal(t, "0.2.0", s.get("/hello/ping").json(t)["version"])
}

// TestFailedInstallLeavesNoData uploads a real executable that is not a
// module: the 422 leaves no files, no data directory and no database.
func TestFailedInstallLeavesNoData(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	plat := "bin/" + runtime.GOOS + "-" + runtime.GOARCH
	data := zipOf(t, zipFile{"module_meta.json", []byte(`{"name":"evil","version":"1.0.0"}`), 0o644}, zipFile{plat + "/evil", tinyExec, 0o755})
	r := s.upload("evil.chacc", data, "")
	require.Equal(t, 422, r.status, "%s", r.body)
	assert.Equal(t, "MODULE_START_FAILED", r.json(t)["error_code"])
	assert.Empty(t, s.dirEntries("installed"))
	assert.Empty(t, s.dirEntries("loaded"))
	_, err := os.Stat(filepath.Join(s.dir, "data", "modules", "evil"))
	assert.True(t, os.IsNotExist(err), "data directory left behind")
	_, err = os.Stat(filepath.Join(s.dir, "data", "modules", "evil.db"))
	assert.True(t, os.IsNotExist(err), "database left behind")
	assert.Equal(t, []any{}, s.get("/modules/").json(t)["modules"])
}

// TestInstallConflictsAndDependencies: a prefix taken by another module is
// 409, unmet dependencies are 422 naming each one; neither writes anything.
func TestInstallConflictsAndDependencies(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		plat := "bin/" + runtime.GOOS + "-" + runtime.GOARCH
		archive := func(manifest string) []byte {
			return zipOf(t, zipFile{"module_meta.json", []byte(manifest), 0o644}, zipFile{plat + "/other", tinyExec, 0o755})
		}

		r := s.upload("other.chacc", archive(`{"name":"other","version":"1.0.0","base_path_prefix":"/hello/sub"}`), "")
		require.Equal(t, 409, r.status, "%s", r.body)
		assert.Equal(t, "PREFIX_CONFLICT", r.json(t)["error_code"])
		assert.Contains(t, r.json(t)["detail"], "module 'hello'")

		r = s.upload("other.chacc", archive(`{"name":"other","version":"1.0.0","dependencies":{"auth":"^1.0.0","hello":">=2.0.0"}}`), "")
		require.Equal(t, 422, r.status, "%s", r.body)
		assert.Equal(t, "DEPENDENCY_UNMET", r.json(t)["error_code"])
		assert.Equal(t, "Module 'other' has unmet dependencies: 'auth' (^1.0.0) is not installed; 'hello' is 0.1.0, which is not >=2.0.0.", r.json(t)["detail"])

		r = s.upload("other.chacc", archive(`{"name":"other","version":"1.0.0","required_chacc_version":">=99.0.0"}`), "")
		require.Equal(t, 422, r.status, "%s", r.body)
		assert.Equal(t, "CORE_VERSION_UNMET", r.json(t)["error_code"])

		assert.Equal(t, []string{"hello-0.1.0.chacc"}, s.dirEntries("installed"))
		assert.Equal(t, []string{"hello"}, s.dirEntries("loaded"))
		assert.Len(t, s.get("/modules/").json(t)["modules"], 1)
	})
}
