package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadAndExtractMatchesReadThenExtract(t *testing.T) {
	exe := realExe(t)
	data := buildZip(t, append(baseEntries(exe), zentry{name: "share/notes.txt", body: []byte("notes"), method: 8})...)

	a1, err := readZip(data, Limits{}, "linux", "amd64")
	require.NoError(t, err)
	dir1 := filepath.Join(t.TempDir(), "one")
	require.NoError(t, a1.Extract(dir1))

	dir2 := filepath.Join(t.TempDir(), "two")
	a2, err := ReadAndExtract(bytes.NewReader(data), int64(len(data)), Limits{}, "linux", "amd64", dir2)
	require.NoError(t, err)

	assert.Equal(t, a1.Files, a2.Files)
	assert.Equal(t, a1.ExecutableSHA256, a2.ExecutableSHA256)
	assert.Equal(t, a1.Manifest, a2.Manifest)
	for _, f := range a2.Files {
		b1, err := os.ReadFile(filepath.Join(dir1, f.Name))
		require.NoError(t, err)
		b2, err := os.ReadFile(filepath.Join(dir2, f.Name))
		require.NoError(t, err)
		assert.Equal(t, b1, b2, f.Name)
		st, err := os.Stat(filepath.Join(dir2, f.Name))
		require.NoError(t, err)
		assert.Equal(t, f.Mode, st.Mode().Perm(), f.Name)
	}
	// The archive it returns extracts again as Read's does.
	require.NoError(t, a2.Extract(filepath.Join(t.TempDir(), "three")))
}

func TestReadAndExtractRefusalsLeaveNothing(t *testing.T) {
	exe := realExe(t)
	tests := []struct {
		name string
		data []byte
		lim  Limits
		kind Kind
	}{
		{"unsafe path", buildZip(t, append(baseEntries(exe), zentry{name: "../x", body: []byte("x")})...), Limits{}, KindInvalid},
		{"over the unpacked limit", buildZip(t, baseEntries(exe)...), Limits{MaxUnpackedBytes: int64(len(exe)) / 2}, KindTooLarge},
		{"wrong platform", buildZip(t, baseEntries(exe)...), Limits{}, KindInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			goarch := "amd64"
			if tc.name == "wrong platform" {
				goarch = "arm64"
			}
			_, err := ReadAndExtract(bytes.NewReader(tc.data), int64(len(tc.data)), tc.lim, "linux", goarch, filepath.Join(parent, "dst"))
			var ae *Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.kind, ae.Kind)
			left, _ := os.ReadDir(parent)
			assert.Empty(t, left)
		})
	}
}
