package archive

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"debug/macho"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	exe := realExe(t)
	data := buildZip(t, append(baseEntries(exe),
		zentry{name: "openapi.json", body: []byte(`{"openapi":"3.0.3"}`), method: zip.Deflate},
		zentry{name: "module.sig", body: []byte("signature")},
		zentry{name: "static/", mode: fs.ModeDir | 0o700},
		zentry{name: "static/css/site.css", body: []byte("body{}"), mode: 0o600},
	)...)

	a, err := readZip(data, Limits{}, "linux", "amd64")
	require.NoError(t, err)

	assert.Equal(t, "hello", a.Manifest.Name)
	assert.Equal(t, "hello", a.Manifest.DisplayName)
	assert.Equal(t, "/hello", a.Manifest.BasePathPrefix)
	assert.Equal(t, testManifest, string(a.ManifestJSON))
	assert.Equal(t, "bin/linux-amd64/hello", a.Executable)
	assert.Equal(t, sha(exe), a.ExecutableSHA256)
	assert.Equal(t, "signature", string(a.Signature))
	assert.JSONEq(t, `{"openapi":"3.0.3"}`, string(a.OpenAPI))
	assert.Equal(t, []File{
		{Name: "bin/linux-amd64/hello", Size: int64(len(exe)), Mode: 0o755, SHA256: sha(exe)},
		{Name: "module.sig", Size: 9, Mode: 0o644, SHA256: sha([]byte("signature"))},
		{Name: "module_meta.json", Size: int64(len(testManifest)), Mode: 0o644, SHA256: sha([]byte(testManifest))},
		{Name: "openapi.json", Size: 19, Mode: 0o644, SHA256: sha([]byte(`{"openapi":"3.0.3"}`))},
		{Name: "static/css/site.css", Size: 6, Mode: 0o644, SHA256: sha([]byte("body{}"))},
	}, a.Files)
	assert.Equal(t, []string{"bin", "bin/linux-amd64", "static", "static/css"}, a.dirs)
}

func TestReadOptionalFilesAbsent(t *testing.T) {
	a, err := readZip(buildZip(t, baseEntries(realExe(t))...), Limits{}, "linux", "amd64")
	require.NoError(t, err)
	assert.Nil(t, a.Signature)
	assert.Nil(t, a.OpenAPI)
}

func TestReadPlatforms(t *testing.T) {
	tests := []struct {
		name   string
		goos   string
		goarch string
		exe    []byte
	}{
		{name: "linux position-independent executable", goos: "linux", goarch: "arm64", exe: fakeELF(elf.ET_DYN, elf.EM_AARCH64)},
		{name: "darwin arm64", goos: "darwin", goarch: "arm64", exe: fakeMachO(macho.TypeExec, macho.CpuArm64)},
		{name: "darwin amd64", goos: "darwin", goarch: "amd64", exe: fakeMachO(macho.TypeExec, macho.CpuAmd64)},
		{name: "other systems need only a non-empty file", goos: "plan9", goarch: "amd64", exe: []byte("anything")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "bin/" + tc.goos + "-" + tc.goarch + "/hello"
			data := buildZip(t,
				zentry{name: "module_meta.json", body: []byte(testManifest)},
				zentry{name: path, body: tc.exe},
			)
			a, err := readZip(data, Limits{}, tc.goos, tc.goarch)
			require.NoError(t, err)
			assert.Equal(t, path, a.Executable)
			assert.Equal(t, sha(tc.exe), a.ExecutableSHA256)
		})
	}
}

// TestReadRefuses covers every refusal of Read. wantMsg is the exact message
// when wantExact is set, otherwise a part of it.
func TestReadRefuses(t *testing.T) {
	exe := realExe(t)
	base := func(more ...zentry) []zentry { return append(baseEntries(exe), more...) }
	file := func(name string) zentry { return zentry{name: name, body: []byte("x")} }
	withManifest := func(manifest string) []zentry {
		return []zentry{{name: "module_meta.json", body: []byte(manifest)}, baseEntries(exe)[1]}
	}
	exeOnly := []zentry{baseEntries(exe)[1]}
	exeAt := func(path string, body []byte) []zentry {
		return []zentry{{name: "module_meta.json", body: []byte(testManifest)}, {name: path, body: body}}
	}
	elf32 := fakeELF(elf.ET_EXEC, elf.EM_X86_64)
	elf32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	lying := deflate(t, bytes.Repeat([]byte("A"), 1000))
	tooBig := Limits{MaxUnpackedBytes: int64(len(exe)) + 1000}

	tests := []struct {
		name      string
		data      []byte   // the archive, when not built from entries
		entries   []zentry // otherwise
		lim       Limits
		goos      string // default linux
		goarch    string // default amd64
		wantKind  Kind
		wantMsg   string
		wantExact bool
	}{
		{name: "not a zip", data: []byte("hello, world"), wantKind: KindInvalid, wantMsg: "Archive is not a valid zip file.", wantExact: true},
		{name: "empty input", data: []byte{}, wantKind: KindInvalid, wantMsg: "Archive is not a valid zip file.", wantExact: true},
		{name: "truncated zip", data: buildZip(t, base()...)[:1000], wantKind: KindInvalid, wantMsg: "Archive is not a valid zip file.", wantExact: true},

		{name: "too many entries", entries: base(file("a"), file("b")), lim: Limits{MaxFiles: 3}, wantKind: KindTooLarge, wantMsg: "Archive has 4 entries; the limit is 3."},
		{name: "declared size over the limit", entries: base(zentry{name: "big", body: make([]byte, 2000), method: zip.Deflate}), lim: tooBig, wantKind: KindTooLarge, wantMsg: "Archive unpacks to more than"},
		{name: "entry inflating past its declared size", entries: base(zentry{name: "liar", body: lying, method: zip.Deflate, raw: true, size: 10}), wantKind: KindInvalid, wantMsg: "Entry 'liar' is corrupt: it holds more data than its header declares."},
		{name: "checksum mismatch", entries: base(zentry{name: "bad", body: []byte("data"), raw: true, size: 4, crc: 1}), wantKind: KindInvalid, wantMsg: "Entry 'bad' is corrupt: zip: checksum error."},

		{name: "absolute path", entries: base(file("/etc/passwd")), wantKind: KindInvalid, wantMsg: "Unsafe path in archive: '/etc/passwd' (absolute path).", wantExact: true},
		{name: "root", entries: base(zentry{name: "/"}), wantKind: KindInvalid, wantMsg: "(absolute path)"},
		{name: "drive letter with backslash", entries: base(file(`C:\x`)), wantKind: KindInvalid, wantMsg: "(absolute path)"},
		{name: "drive letter with slash", entries: base(file("C:/x")), wantKind: KindInvalid, wantMsg: "(absolute path)"},
		{name: "UNC path", entries: base(file(`\\server\share`)), wantKind: KindInvalid, wantMsg: "(absolute path)"},
		{name: "parent segment", entries: base(file("../evil")), wantKind: KindInvalid, wantMsg: "Unsafe path in archive: '../evil' ('..' segment).", wantExact: true},
		{name: "parent segment inside", entries: base(file("a/../../evil")), wantKind: KindInvalid, wantMsg: "('..' segment)"},
		{name: "parent segment last", entries: base(zentry{name: "a/../"}), wantKind: KindInvalid, wantMsg: "('..' segment)"},
		{name: "backslash", entries: base(file(`bin\evil`)), wantKind: KindInvalid, wantMsg: "(backslash)"},
		{name: "empty name", entries: base(file("")), wantKind: KindInvalid, wantMsg: "(empty path segment)"},
		{name: "empty segment", entries: base(file("a//b")), wantKind: KindInvalid, wantMsg: "(empty path segment)"},
		{name: "dot segment", entries: base(file("./a")), wantKind: KindInvalid, wantMsg: "('.' segment)"},
		{name: "dot segment inside", entries: base(file("a/./b")), wantKind: KindInvalid, wantMsg: "('.' segment)"},
		{name: "NUL in name", entries: base(file("a\x00b")), wantKind: KindInvalid, wantMsg: `Unsafe path in archive: "a\x00b" (control or non-printable character).`, wantExact: true},
		{name: "newline in name", entries: base(file("a\nb")), wantKind: KindInvalid, wantMsg: "(control or non-printable character)"},
		{name: "DEL in name", entries: base(file("a\x7fb")), wantKind: KindInvalid, wantMsg: "(control or non-printable character)"},
		{name: "invalid UTF-8 in name", entries: base(file("a\xffb")), wantKind: KindInvalid, wantMsg: "(control or non-printable character)"},
		{name: "segment over 255 bytes", entries: base(file("a/" + strings.Repeat("x", 256))), wantKind: KindInvalid, wantMsg: "(path segment longer than 255 bytes)"},
		{name: "path over 1024 bytes", entries: base(file(strings.Repeat(strings.Repeat("x", 200)+"/", 5) + "abcdefghijklmnopqrstuvwxyz")), wantKind: KindInvalid, wantMsg: "(longer than 1024 bytes)"},

		{name: "symlink", entries: base(zentry{name: "link", body: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}), wantKind: KindInvalid, wantMsg: "Entry 'link' is a symlink; only regular files and directories are allowed.", wantExact: true},
		{name: "symlink with a trailing slash", entries: base(zentry{name: "link/", mode: fs.ModeSymlink | 0o777}), wantKind: KindInvalid, wantMsg: "is a symlink"},
		{name: "block device", entries: base(zentry{name: "sda", mode: fs.ModeDevice | 0o600}), wantKind: KindInvalid, wantMsg: "is a device"},
		{name: "character device", entries: base(zentry{name: "tty", mode: fs.ModeDevice | fs.ModeCharDevice | 0o600}), wantKind: KindInvalid, wantMsg: "is a device"},
		{name: "named pipe", entries: base(zentry{name: "fifo", mode: fs.ModeNamedPipe | 0o600}), wantKind: KindInvalid, wantMsg: "is a named pipe"},
		{name: "socket", entries: base(zentry{name: "sock", mode: fs.ModeSocket | 0o600}), wantKind: KindInvalid, wantMsg: "is a socket"},

		{name: "duplicate file", entries: base(file("a"), file("a")), wantKind: KindInvalid, wantMsg: "Duplicate entry in archive: 'a'.", wantExact: true},
		{name: "duplicate of the manifest", entries: base(zentry{name: "module_meta.json", body: []byte(`{"name":"evil","version":"1.0.0"}`)}), wantKind: KindInvalid, wantMsg: "Duplicate entry in archive: 'module_meta.json'."},
		{name: "duplicate directory", entries: base(zentry{name: "d/"}, zentry{name: "d/"}), wantKind: KindInvalid, wantMsg: "Duplicate entry in archive: 'd'."},
		{name: "file and directory of one name", entries: base(file("a"), zentry{name: "a/"}), wantKind: KindInvalid, wantMsg: "Duplicate entry in archive: 'a'."},
		{name: "file inside a file", entries: base(file("a"), file("a/b")), wantKind: KindInvalid, wantMsg: "Entry 'a/b' is inside 'a', which is a file."},

		{name: "unsupported compression", entries: base(zentry{name: "b.bz2", body: []byte("BZh"), method: 12, raw: true, size: 3}), wantKind: KindInvalid, wantMsg: "Entry 'b.bz2' uses compression method 12; only Store and Deflate are allowed."},
		{name: "encrypted entry", entries: base(zentry{name: "secret", body: []byte("x"), flags: 0x1}), wantKind: KindInvalid, wantMsg: "Entry 'secret' is encrypted."},

		{name: "no manifest", entries: exeOnly, wantKind: KindInvalid, wantMsg: "Archive must contain 'module_meta.json'.", wantExact: true},
		{name: "manifest not at the root", entries: append(exeOnly, zentry{name: "hello/module_meta.json", body: []byte(testManifest)}), wantKind: KindInvalid, wantMsg: "'module_meta.json' must be at the root of the archive, not at 'hello/module_meta.json'."},
		{name: "manifest is a directory", entries: append(exeOnly, zentry{name: "module_meta.json/"}), wantKind: KindInvalid, wantMsg: "Archive must contain 'module_meta.json'."},
		{name: "manifest over the limit", entries: base(), lim: Limits{MaxManifestBytes: 10}, wantKind: KindTooLarge, wantMsg: "'module_meta.json' is larger than 10 bytes."},
		{name: "manifest is an array", entries: withManifest(`[]`), wantKind: KindInvalid, wantMsg: "'module_meta.json' must hold a JSON object."},
		{name: "manifest is null", entries: withManifest(`null`), wantKind: KindInvalid, wantMsg: "'module_meta.json' must hold a JSON object."},
		{name: "manifest is a string", entries: withManifest(`"hello"`), wantKind: KindInvalid, wantMsg: "'module_meta.json' must hold a JSON object."},
		{name: "manifest is not JSON", entries: withManifest(`{name: hello}`), wantKind: KindInvalid, wantMsg: "'module_meta.json' is not valid: invalid character"},
		{name: "manifest has trailing data", entries: withManifest(`{"name":"hello","version":"1.0.0"} {}`), wantKind: KindInvalid, wantMsg: "'module_meta.json' is not valid"},
		{name: "manifest field of the wrong type", entries: withManifest(`{"name": 5}`), wantKind: KindInvalid, wantMsg: "'module_meta.json' is not valid: cannot unmarshal number"},
		{name: "manifest without a name", entries: withManifest(`{"version": "1.0.0"}`), wantKind: KindInvalid, wantMsg: "'name' field is missing in 'module_meta.json'.", wantExact: true},
		{name: "manifest with a bad name", entries: withManifest(`{"name": "Hello", "version": "1.0.0"}`), wantKind: KindInvalid, wantMsg: "Invalid module name 'Hello'"},

		{name: "no executable", entries: []zentry{{name: "module_meta.json", body: []byte(testManifest)}}, wantKind: KindInvalid, wantMsg: "No executable for linux/amd64: expected 'bin/linux-amd64/hello'.", wantExact: true},
		{name: "executable only for another platform", entries: base(), goarch: "arm64", wantKind: KindInvalid, wantMsg: "No executable for linux/arm64: expected 'bin/linux-arm64/hello'."},
		{name: "executable is a directory", entries: exeAt("bin/linux-amd64/hello/", nil), wantKind: KindInvalid, wantMsg: "No executable for linux/amd64"},
		{name: "executable built for another architecture", entries: exeAt("bin/linux-arm64/hello", exe), goarch: "arm64", wantKind: KindInvalid, wantMsg: "Executable 'bin/linux-arm64/hello' is not a linux/arm64 executable: it is built for EM_X86_64 (ELFCLASS64, ELFDATA2LSB)."},
		{name: "executable is a text file", entries: exeAt("bin/linux-amd64/hello", []byte("#!/bin/sh\necho hi\n")), wantKind: KindInvalid, wantMsg: "is not a linux/amd64 executable: it is not an ELF file."},
		{name: "executable is empty", entries: exeAt("bin/linux-amd64/hello", nil), wantKind: KindInvalid, wantMsg: "it is not an ELF file."},
		{name: "executable is a relocatable object", entries: exeAt("bin/linux-amd64/hello", fakeELF(elf.ET_REL, elf.EM_X86_64)), wantKind: KindInvalid, wantMsg: "its ELF type is ET_REL."},
		{name: "executable is 32-bit", entries: exeAt("bin/linux-amd64/hello", elf32), wantKind: KindInvalid, wantMsg: "it is built for EM_X86_64 (ELFCLASS32, ELFDATA2LSB)."},
		{name: "ELF executable on darwin", entries: exeAt("bin/darwin-arm64/hello", exe), goos: "darwin", goarch: "arm64", wantKind: KindInvalid, wantMsg: "is not a darwin/arm64 executable: it is not a 64-bit Mach-O file."},
		{name: "Mach-O for another CPU", entries: exeAt("bin/darwin-arm64/hello", fakeMachO(macho.TypeExec, macho.CpuAmd64)), goos: "darwin", goarch: "arm64", wantKind: KindInvalid, wantMsg: "it is built for CpuAmd64."},
		{name: "Mach-O library", entries: exeAt("bin/darwin-arm64/hello", fakeMachO(macho.TypeDylib, macho.CpuArm64)), goos: "darwin", goarch: "arm64", wantKind: KindInvalid, wantMsg: "its Mach-O type is Dylib."},
		{name: "empty executable on another system", entries: exeAt("bin/plan9-amd64/hello", nil), goos: "plan9", wantKind: KindInvalid, wantMsg: "Executable 'bin/plan9-amd64/hello' is not a plan9/amd64 executable: it is empty."},

		{name: "signature over 64 KiB", entries: base(zentry{name: "module.sig", body: make([]byte, 64<<10+1)}), wantKind: KindTooLarge, wantMsg: "'module.sig' is larger than 65536 bytes."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = buildZip(t, tc.entries...)
			}
			goos, goarch := "linux", "amd64"
			if tc.goos != "" {
				goos = tc.goos
			}
			if tc.goarch != "" {
				goarch = tc.goarch
			}
			a, err := readZip(data, tc.lim, goos, goarch)
			assert.Nil(t, a)
			var aerr *Error
			require.ErrorAs(t, err, &aerr)
			assert.Equal(t, tc.wantKind, aerr.Kind)
			if tc.wantExact {
				assert.Equal(t, tc.wantMsg, aerr.Msg)
			} else {
				assert.Contains(t, aerr.Msg, tc.wantMsg)
			}
		})
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestReadStopsBombEarly checks that a deflate bomb is refused after reading
// only a small part of it, whether its header is honest or lies.
func TestReadStopsBombEarly(t *testing.T) {
	exe := realExe(t)
	const unpacked = 64 << 20
	bomb := deflate(t, make([]byte, unpacked))
	lim := Limits{MaxUnpackedBytes: int64(len(exe)) + 1<<20}
	tests := []struct {
		name     string
		declared uint64
		wantKind Kind
		wantMsg  string
	}{
		{name: "honest header", declared: unpacked, wantKind: KindTooLarge, wantMsg: "Archive unpacks to more than"},
		{name: "header declaring a small size", declared: 1000, wantKind: KindInvalid, wantMsg: "Entry 'bomb' is corrupt: it holds more data than its header declares."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := buildZip(t, append(baseEntries(exe), zentry{
				name: "bomb", body: bomb, method: zip.Deflate, raw: true, size: tc.declared,
			})...)
			r := &countingReaderAt{r: bytes.NewReader(data)}
			_, err := Read(r, int64(len(data)), lim, "linux", "amd64")
			var aerr *Error
			require.ErrorAs(t, err, &aerr)
			assert.Equal(t, tc.wantKind, aerr.Kind)
			assert.Contains(t, aerr.Msg, tc.wantMsg)
			// The executable and headers are read whole; of the bomb's
			// compressed bytes, only a small part may be.
			assert.Less(t, r.n.Load(), int64(2*len(exe)+len(bomb)/4))
		})
	}
}
