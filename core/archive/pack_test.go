package archive

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeModule writes files (slash path → content) into a new module folder.
func writeModule(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, body, 0o644))
	}
	return dir
}

func TestPackReadRoundTrip(t *testing.T) {
	exe := realExe(t)
	manifest := []byte(`{"name": "hello", "version": "1.2.3", "extra_prefixes": ["/api/v1/hello"]}`)
	dir := writeModule(t, map[string][]byte{
		"module_meta.json":       manifest,
		"bin/linux-amd64/hello":  exe,
		"bin/darwin-arm64/hello": fakeMachO(macho.TypeExec, macho.CpuArm64),
		"openapi.json":           []byte(`{"openapi":"3.0.3"}`),
		"README.md":              []byte("not packed"),
		"module.sig":             []byte("not packed either"),
	})

	var buf bytes.Buffer
	m, err := Pack(dir, &buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", m.Name)
	assert.Equal(t, "/hello", m.BasePathPrefix)

	var again bytes.Buffer
	_, err = Pack(dir, &again)
	require.NoError(t, err)
	assert.Equal(t, buf.Bytes(), again.Bytes(), "packing is deterministic")

	a, err := readZip(buf.Bytes(), Limits{}, "linux", "amd64")
	require.NoError(t, err)
	assert.Equal(t, *m, a.Manifest)
	assert.Equal(t, manifest, a.ManifestJSON)
	assert.Equal(t, `{"openapi":"3.0.3"}`, string(a.OpenAPI))
	assert.Nil(t, a.Signature)
	var names []string
	for _, f := range a.Files {
		names = append(names, f.Name)
	}
	assert.Equal(t, []string{"bin/darwin-arm64/hello", "bin/linux-amd64/hello", "module_meta.json", "openapi.json"}, names)

	out := filepath.Join(t.TempDir(), "hello")
	require.NoError(t, a.Extract(out))
	sum, err := HashFile(filepath.Join(out, filepath.FromSlash(a.Executable)))
	require.NoError(t, err)
	assert.Equal(t, a.ExecutableSHA256, sum)
	assert.Equal(t, sha(exe), sum)

	_, err = readZip(buf.Bytes(), Limits{}, "darwin", "arm64")
	assert.NoError(t, err)
}

func TestPackRefuses(t *testing.T) {
	elfExe := fakeELF(elf.ET_EXEC, elf.EM_X86_64)
	tests := []struct {
		name    string
		files   map[string][]byte
		setup   func(t *testing.T, dir string)
		wantErr func(t *testing.T, err error)
	}{
		{
			name:  "no manifest",
			files: map[string][]byte{"bin/linux-amd64/hello": elfExe},
			wantErr: func(t *testing.T, err error) {
				assert.ErrorIs(t, err, fs.ErrNotExist)
			},
		},
		{
			name:    "invalid manifest",
			files:   map[string][]byte{"module_meta.json": []byte(`{"version": "1.0.0"}`), "bin/linux-amd64/hello": elfExe},
			wantErr: wantMsg("'name' field is missing in 'module_meta.json'."),
		},
		{
			name:    "no bin folder",
			files:   map[string][]byte{"module_meta.json": []byte(testManifest)},
			wantErr: wantMsg("No executable in "),
		},
		{
			name:    "executable under another name",
			files:   map[string][]byte{"module_meta.json": []byte(testManifest), "bin/linux-amd64/other": elfExe},
			wantErr: wantMsg("expected at least one 'bin/<goos>-<goarch>/hello'."),
		},
		{
			name:  "symlink in bin",
			files: map[string][]byte{"module_meta.json": []byte(testManifest), "bin/linux-amd64/hello": elfExe},
			setup: func(t *testing.T, dir string) {
				require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, "bin", "passwd")))
			},
			wantErr: wantMsg("Cannot pack 'bin/passwd': only regular files can be packed."),
		},
		{
			name:    "name Read would refuse",
			files:   map[string][]byte{"module_meta.json": []byte(testManifest), "bin/linux-amd64/hello": elfExe, "bin/a\\b": nil},
			wantErr: wantMsg("(backslash)"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeModule(t, tc.files)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			m, err := Pack(dir, io.Discard)
			assert.Nil(t, m)
			require.Error(t, err)
			tc.wantErr(t, err)
		})
	}
}

// wantMsg checks that err is an [*Error] of kind [KindInvalid] containing msg.
func wantMsg(msg string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		var aerr *Error
		require.ErrorAs(t, err, &aerr)
		assert.Equal(t, KindInvalid, aerr.Kind)
		assert.Contains(t, aerr.Msg, msg)
	}
}
