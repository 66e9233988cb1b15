package archive

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// extractable returns an archive with the executable, the manifest, an empty
// directory and a file sorting after all the others, and its bytes.
func extractable(t *testing.T) (*Archive, []byte) {
	t.Helper()
	data := buildZip(t, append(baseEntries(realExe(t)),
		zentry{name: "data/"},
		zentry{name: "web/assets/zz.txt", body: bytes.Repeat([]byte("Z"), 100), mode: 0o777},
	)...)
	a, err := readZip(data, Limits{}, "linux", "amd64")
	require.NoError(t, err)
	return a, data
}

// assertEmpty checks that parent holds nothing: no target, no temporary
// sibling.
func assertEmpty(t *testing.T, parent string) {
	t.Helper()
	left, err := os.ReadDir(parent)
	require.NoError(t, err)
	assert.Empty(t, left)
}

func TestExtract(t *testing.T) {
	a, _ := extractable(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "hello")

	require.NoError(t, a.Extract(dir))

	wantModes := map[string]fs.FileMode{
		".":                     fs.ModeDir | 0o755,
		"bin":                   fs.ModeDir | 0o755,
		"bin/linux-amd64":       fs.ModeDir | 0o755,
		"bin/linux-amd64/hello": 0o755,
		"data":                  fs.ModeDir | 0o755,
		"module_meta.json":      0o644,
		"web":                   fs.ModeDir | 0o755,
		"web/assets":            fs.ModeDir | 0o755,
		"web/assets/zz.txt":     0o644,
	}
	gotModes := map[string]fs.FileMode{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		gotModes[filepath.ToSlash(rel)] = info.Mode()
		return nil
	}))
	assert.Equal(t, wantModes, gotModes)

	for _, f := range a.Files {
		sum, err := HashFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		require.NoError(t, err)
		assert.Equal(t, f.SHA256, sum, f.Name)
	}
	sum, err := HashFile(filepath.Join(dir, "bin/linux-amd64/hello"))
	require.NoError(t, err)
	assert.Equal(t, sha(realExe(t)), sum)

	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary sibling is left")
	assert.Equal(t, "hello", entries[0].Name())
}

func TestExtractIgnoresChangesToFiles(t *testing.T) {
	a, _ := extractable(t)
	a.Files[0].Name = "../evil"
	dir := filepath.Join(t.TempDir(), "hello")

	require.NoError(t, a.Extract(dir))
	assert.FileExists(t, filepath.Join(dir, "bin/linux-amd64/hello"))
	assert.NoFileExists(t, filepath.Join(dir, "../evil"))
}

func TestExtractTargetExists(t *testing.T) {
	a, _ := extractable(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "hello")
	require.NoError(t, os.Mkdir(dir, 0o755))

	err := a.Extract(dir)
	require.ErrorIs(t, err, fs.ErrExist)

	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "hello", entries[0].Name())
	assertEmpty(t, dir)
}

func TestExtractParentMissing(t *testing.T) {
	a, _ := extractable(t)
	parent := t.TempDir()

	require.ErrorIs(t, a.Extract(filepath.Join(parent, "missing", "hello")), fs.ErrNotExist)
	assertEmpty(t, parent)
}

// TestExtractFailsMidway makes extraction fail after some files are written
// (the executable sorts first, the tampered file last) and checks that
// nothing is left behind.
func TestExtractFailsMidway(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(t *testing.T, a *Archive, data []byte)
		wantKind Kind
		wantMsg  string
	}{
		{
			name:     "executable differs from its pin",
			tamper:   func(_ *testing.T, a *Archive, _ []byte) { a.ExecutableSHA256 = sha([]byte("another build")) },
			wantKind: KindInvalid,
			wantMsg:  "Entry 'bin/linux-amd64/hello' does not match its SHA-256: expected " + sha([]byte("another build")),
		},
		{
			// The zip cannot lie about sizes to archive/zip, so shrink the
			// limit after Read instead, as if the headers had lied.
			name: "more bytes than the limit",
			tamper: func(_ *testing.T, a *Archive, _ []byte) {
				a.lim.MaxUnpackedBytes = a.Files[0].Size + a.Files[1].Size + 50
			},
			wantKind: KindTooLarge,
			wantMsg:  "Archive unpacks to more than",
		},
		{
			name: "archive changed after Read",
			tamper: func(t *testing.T, _ *Archive, data []byte) {
				i := bytes.Index(data, bytes.Repeat([]byte("Z"), 100))
				require.GreaterOrEqual(t, i, 0)
				data[i+50] = 'Y'
			},
			wantKind: KindInvalid,
			wantMsg:  "Entry 'web/assets/zz.txt' is corrupt: zip: checksum error.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, data := extractable(t)
			tc.tamper(t, a, data)
			parent := t.TempDir()

			err := a.Extract(filepath.Join(parent, "hello"))
			var aerr *Error
			require.ErrorAs(t, err, &aerr)
			assert.Equal(t, tc.wantKind, aerr.Kind)
			assert.Contains(t, aerr.Msg, tc.wantMsg)
			assertEmpty(t, parent)
		})
	}
}
