package archive

import (
	"archive/zip"
	"debug/elf"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzRead")

// fuzzLimits keep fuzzing fast; the seeds are built against them.
var fuzzLimits = Limits{MaxUnpackedBytes: 1 << 20, MaxFiles: 50, MaxManifestBytes: 64 << 10}

const corpusDir = "testdata/fuzz/FuzzRead"

// FuzzRead checks that Read never panics and returns only *Error, and that
// an archive it accepts extracts, or fails to, without writing outside the
// target directory or more than the limit. Its seeds are the files in
// testdata/fuzz/FuzzRead, written by TestFuzzCorpus.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := readZip(data, fuzzLimits, "linux", "amd64")
		if err != nil {
			var aerr *Error
			require.ErrorAs(t, err, &aerr)
			require.NotEmpty(t, aerr.Msg)
			return
		}
		parent := filepath.Join(t.TempDir(), "parent")
		require.NoError(t, os.Mkdir(parent, 0o755))
		dir := filepath.Join(parent, "module")

		err = a.Extract(dir)

		left, rerr := os.ReadDir(parent)
		require.NoError(t, rerr)
		if err != nil {
			require.Empty(t, left, "a failed Extract leaves nothing behind")
			return
		}
		require.Len(t, left, 1)
		require.Equal(t, "module", left[0].Name())
		var total int64
		var files int
		require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			info, err := d.Info()
			require.NoError(t, err)
			require.True(t, info.Mode().IsRegular() || info.IsDir(), "only files and directories: %s", p)
			if info.Mode().IsRegular() {
				total += info.Size()
				files++
			}
			return nil
		}))
		require.LessOrEqual(t, total, fuzzLimits.MaxUnpackedBytes)
		require.Equal(t, len(a.Files), files)
	})
}

// seed is an archive for the fuzz corpus and the kind of error Read gives
// it under fuzzLimits, 0 when Read accepts it.
type seed struct {
	name     string
	data     []byte
	wantKind Kind
}

func fuzzSeeds(t *testing.T) []seed {
	exe := fakeELF(elf.ET_EXEC, elf.EM_X86_64)
	manifest := zentry{name: "module_meta.json", body: []byte(testManifest)}
	executable := zentry{name: "bin/linux-amd64/hello", body: exe, mode: 0o755, method: zip.Deflate}
	valid := func(more ...zentry) []byte {
		return buildZip(t, append([]zentry{manifest, executable}, more...)...)
	}
	zeros := deflate(t, make([]byte, 4<<20))
	many := make([]zentry, 60)
	for i := range many {
		many[i] = zentry{name: "f" + strconv.Itoa(i)}
	}
	return []seed{
		{name: "valid", data: valid(
			zentry{name: "openapi.json", body: []byte(`{"openapi":"3.0.3"}`), method: zip.Deflate},
			zentry{name: "module.sig", body: []byte("sig")},
			zentry{name: "static/"},
			zentry{name: "static/app.js", body: []byte("console.log(1)"), method: zip.Deflate},
		)},
		{name: "not-zip", data: []byte("MZ\x90\x00 not a zip"), wantKind: KindInvalid},
		{name: "traversal", data: valid(zentry{name: "../../etc/cron.d/evil", body: []byte("* * * * * root sh")}), wantKind: KindInvalid},
		{name: "absolute", data: valid(zentry{name: "/etc/passwd", body: []byte("root::0:0")}), wantKind: KindInvalid},
		{name: "symlink", data: valid(zentry{name: "bin/link", body: []byte("/etc/shadow"), mode: fs.ModeSymlink | 0o777}), wantKind: KindInvalid},
		{name: "bomb", data: valid(zentry{name: "zeros", body: zeros, method: zip.Deflate, raw: true, size: 4 << 20}), wantKind: KindTooLarge},
		{name: "bomb-lying-header", data: valid(zentry{name: "zeros", body: zeros, method: zip.Deflate, raw: true, size: 10}), wantKind: KindInvalid},
		{name: "duplicate-manifest", data: valid(zentry{name: "module_meta.json", body: []byte(`{"name":"evil","version":"1.0.0"}`)}), wantKind: KindInvalid},
		{name: "file-inside-file", data: valid(zentry{name: "bin/linux-amd64/hello/x", body: []byte("x")}), wantKind: KindInvalid},
		{name: "no-manifest", data: buildZip(t, executable), wantKind: KindInvalid},
		{name: "manifest-not-object", data: buildZip(t, zentry{name: "module_meta.json", body: []byte(`["hello"]`)}, executable), wantKind: KindInvalid},
		{name: "wrong-arch", data: buildZip(t, manifest, zentry{name: "bin/linux-amd64/hello", body: fakeELF(elf.ET_EXEC, elf.EM_AARCH64)}), wantKind: KindInvalid},
		{name: "encrypted", data: valid(zentry{name: "secret", body: []byte("x"), flags: 0x1}), wantKind: KindInvalid},
		{name: "too-many-entries", data: valid(many...), wantKind: KindTooLarge},
	}
}

// TestFuzzCorpus checks that each seed in the corpus still gets the outcome
// it was written for; with -update-corpus it rewrites the corpus first.
func TestFuzzCorpus(t *testing.T) {
	seeds := fuzzSeeds(t)
	if *updateCorpus {
		require.NoError(t, os.MkdirAll(corpusDir, 0o755))
		for _, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s.data)) + ")\n"
			require.NoError(t, os.WriteFile(filepath.Join(corpusDir, s.name), []byte(body), 0o644))
		}
	}
	for _, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(corpusDir, s.name))
			require.NoError(t, err, "run: go test ./core/archive -run TestFuzzCorpus -update-corpus")
			lit, ok := strings.CutPrefix(string(body), "go test fuzz v1\n[]byte(")
			require.True(t, ok)
			data, err := strconv.Unquote(strings.TrimSuffix(lit, ")\n"))
			require.NoError(t, err)

			_, err = readZip([]byte(data), fuzzLimits, "linux", "amd64")
			if s.wantKind == 0 {
				assert.NoError(t, err)
				return
			}
			var aerr *Error
			require.True(t, errors.As(err, &aerr), "want an *Error, got %v", err)
			assert.Equal(t, s.wantKind, aerr.Kind, aerr.Msg)
		})
	}
}
