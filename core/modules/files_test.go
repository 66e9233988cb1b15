package modules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/store"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileTree creates empty files under a temporary directory and returns a
// Manager on it and a function listing one sub-directory.
func fileTree(t *testing.T, paths ...string) (*Manager, func(sub string) []string) {
	dir := t.TempDir()
	m := &Manager{cfg: Config{InstalledDir: filepath.Join(dir, "installed"), LoadedDir: filepath.Join(dir, "loaded")}, log: slog.New(slog.DiscardHandler)}
	for _, p := range paths {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
	}
	return m, func(sub string) []string {
		es, _ := os.ReadDir(filepath.Join(dir, sub))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
}

func TestRemoveFilesTouchesOnlyThatModule(t *testing.T) {
	m, left := fileTree(t,
		"installed/hello-1.0.0.chacc", "installed/hello-2.0.0-rc.1.chacc", "installed/hello-world-1.0.0.chacc",
		"loaded/hello/1.0.0/bin/x", "loaded/hello-world/1.0.0/bin/x",
	)
	m.removeFiles("hello")
	assert.Equal(t, []string{"hello-world-1.0.0.chacc"}, left("installed"))
	assert.Equal(t, []string{"hello-world"}, left("loaded"))
}

// A core that was down while another uninstalled or upgraded a module finds
// the old files at start; only what the records name stays.
func TestRemoveUnrecorded(t *testing.T) {
	m, left := fileTree(t,
		"installed/hello-1.0.0.chacc", "installed/hello-2.0.0.chacc", "installed/gone-1.0.0.chacc",
		"loaded/hello/1.0.0/bin/x", "loaded/hello/2.0.0/bin/x", "loaded/gone/1.0.0/bin/x",
		"loaded/.staging-abc/bin/x",
	)
	m.removeUnrecorded([]store.Module{{Name: "hello", Version: "2.0.0"}})
	assert.Equal(t, []string{"hello-2.0.0.chacc"}, left("installed"))
	assert.Equal(t, []string{".staging-abc", "hello"}, left("loaded"))
	assert.Equal(t, []string{"2.0.0"}, left("loaded/hello"))
}

// An upload goes to a file of its own; one over the limit, or one whose
// reading fails, leaves nothing behind.
func TestReceive(t *testing.T) {
	m, left := fileTree(t, "installed/hello-1.0.0.chacc")
	up, err := m.Receive(strings.NewReader("archive bytes"), 13)
	require.NoError(t, err)
	assert.Equal(t, int64(13), up.Size())
	assert.Equal(t, sha256Hex("archive bytes"), up.sha256)
	kept, err := os.ReadFile(up.path)
	require.NoError(t, err)
	assert.Equal(t, "archive bytes", string(kept))
	assert.Len(t, left("installed"), 2)
	up.Remove()
	assert.Equal(t, []string{"hello-1.0.0.chacc"}, left("installed"))

	_, err = m.Receive(strings.NewReader("fourteen bytes"), 13)
	var cerr *core.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, "ARCHIVE_TOO_LARGE", cerr.ErrorCode)

	_, err = m.Receive(io.MultiReader(strings.NewReader("part"), iotest.ErrReader(io.ErrUnexpectedEOF)), 100)
	var rerr *ReadError
	require.ErrorAs(t, err, &rerr)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, []string{"hello-1.0.0.chacc"}, left("installed"))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return w.Buffer.Write(p) }

// copyFull writes whole buffers whatever the size of the reads (a multipart
// part reads 4 KiB at a time), and reports a failed read as a failure.
func TestCopyFull(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160,000 bytes
	var w countingWriter
	n, err := copyFull(&w, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(data))), make([]byte, 64<<10))
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), n)
	assert.Equal(t, data, w.Bytes())
	assert.Equal(t, 3, w.writes, "two full buffers and the rest")

	w = countingWriter{}
	n, err = copyFull(&w, io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(io.ErrUnexpectedEOF)), make([]byte, 64<<10))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "a truncated upload is not a complete one")
	assert.Equal(t, int64(1000), n)
}
