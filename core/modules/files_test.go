package modules

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRemoveFilesTouchesOnlyThatModule(t *testing.T) {
	dir := t.TempDir()
	m := &Manager{cfg: Config{InstalledDir: filepath.Join(dir, "installed"), LoadedDir: filepath.Join(dir, "loaded")}}
	for _, p := range []string{
		"installed/hello-1.0.0.chacc", "installed/hello-2.0.0-rc.1.chacc", "installed/hello-world-1.0.0.chacc",
		"loaded/hello/1.0.0/bin/x", "loaded/hello-world/1.0.0/bin/x",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
	}
	m.removeFiles("hello")
	left := func(sub string) []string {
		es, _ := os.ReadDir(filepath.Join(dir, sub))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	assert.Equal(t, []string{"hello-world-1.0.0.chacc"}, left("installed"))
	assert.Equal(t, []string{"hello-world"}, left("loaded"))
}
