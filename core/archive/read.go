package archive

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/chacc/chacc/sdk"
)

const (
	sigFile         = "module.sig"
	openAPIFile     = "openapi.json"
	maxSigBytes     = 64 << 10
	maxOpenAPIBytes = 8 << 20
)

// Limits bounds what [Read] accepts. A zero or negative field takes its
// default. Exceeding any limit is an [Error] of kind [KindTooLarge].
type Limits struct {
	// MaxUnpackedBytes bounds the total decompressed size of all entries,
	// as declared in the headers and as counted while inflating.
	// Default: 512 MiB.
	MaxUnpackedBytes int64
	// MaxFiles bounds the number of entries in the zip, directories
	// included. Default: 1000.
	MaxFiles int
	// MaxManifestBytes bounds the size of module_meta.json. Default: 1 MiB.
	MaxManifestBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxUnpackedBytes <= 0 {
		l.MaxUnpackedBytes = 512 << 20
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 1000
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = 1 << 20
	}
	return l
}

// Archive is a validated module archive, safe to extract. Read fills it;
// [Archive.Extract] writes it out from its own private record of the
// validated entries, so changing Files does not change what is extracted.
type Archive struct {
	// Manifest is the validated manifest, with the defaults
	// [ValidateManifest] fills.
	Manifest sdk.Manifest
	// ManifestJSON is module_meta.json exactly as stored in the archive.
	ManifestJSON []byte
	// Executable is the archive path of the executable for the platform
	// Read was asked about: "bin/<goos>-<goarch>/<name>".
	Executable string
	// ExecutableSHA256 is the lowercase hex SHA-256 of the executable's
	// decompressed bytes. Extract refuses an executable that does not match
	// it, so a caller may set it to a checksum pinned earlier.
	ExecutableSHA256 string
	// Signature is the content of module.sig, or nil when there is none.
	// Read does not verify it: see [Archive.VerifySignature].
	Signature []byte
	// OpenAPI is the content of openapi.json, or nil when there is none.
	// Read does not check that it is valid OpenAPI.
	OpenAPI []byte
	// Files lists every regular file, sorted by name.
	Files []File

	entries []entry  // the regular files Extract writes, in Files order
	dirs    []string // every directory, explicit or implied, sorted
	exe     string   // Executable, as Read found it
	lim     Limits
}

// File is a regular file of an [Archive].
type File struct {
	// Name is a clean relative slash path, such as "bin/linux-amd64/hello".
	Name string
	// Size is the decompressed size, as counted while inflating.
	Size int64
	// Mode is the mode Extract gives the file: 0755 for the executable,
	// 0644 for every other file.
	Mode fs.FileMode
	// SHA256 is the lowercase hex SHA-256 of the decompressed bytes.
	SHA256 string
}

type entry struct {
	File
	zf *zip.File
}

// errLimit is what inflate returns when more bytes come out than allowed.
var errLimit = errors.New("archive: limit exceeded")

// Read parses and validates the archive held in r, which is size bytes long,
// for the platform goos/goarch. It refuses:
//   - anything that is not a zip, or has more than Limits.MaxFiles entries;
//   - a total decompressed size over Limits.MaxUnpackedBytes, declared or
//     counted while inflating;
//   - names that are absolute, hold a backslash, an empty, "." or ".."
//     segment, or a control or non-printable character, or are longer than
//     255 bytes a segment or 1024 in all;
//   - entries that are not regular files or directories (symlinks,
//     devices, pipes, sockets), duplicate names, a file used as a
//     directory, encrypted entries, and compression other than Store and
//     Deflate;
//   - a missing, misplaced, oversized or invalid module_meta.json (see
//     [ValidateManifest]);
//   - a missing bin/<goos>-<goarch>/<name>, or one whose header shows it is
//     not an executable for that platform;
//   - a module.sig over 64 KiB or an openapi.json over 8 MiB.
//
// Every refusal, and every error reading r, is an [*Error]. Read inflates
// every file once to count and hash it but keeps in memory only
// module_meta.json, module.sig, openapi.json and the executable's header.
func Read(r io.ReaderAt, size int64, lim Limits, goos, goarch string) (*Archive, error) {
	a, files, err := parse(r, size, lim, goos, goarch)
	if err != nil {
		return nil, err
	}
	if err := a.hashFiles(files); err != nil {
		return nil, err
	}
	return a, nil
}

// ReadAndExtract is [Read] followed by [Archive.Extract] into dir, in one
// pass: every file is inflated once, hashed and counted as it is written. It
// refuses what Read refuses; on any error dir does not exist afterwards.
func ReadAndExtract(r io.ReaderAt, size int64, lim Limits, goos, goarch, dir string) (*Archive, error) {
	a, files, err := parse(r, size, lim, goos, goarch)
	if err != nil {
		return nil, err
	}
	err = extractInto(dir, a.dirs, func(tmp string) error {
		return a.takeFiles(files, func(e entry, budget int64) (int64, string, error) {
			return writeFile(tmp, e, budget)
		})
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// parse does every check of Read that needs no inflating beyond the small
// files, and returns the regular files by name.
func parse(r io.ReaderAt, size int64, lim Limits, goos, goarch string) (*Archive, map[string]*zip.File, error) {
	lim = lim.withDefaults()
	// zip.NewReader reports unsafe names only under GODEBUG=zipinsecurepath=0,
	// with a usable reader; checkPath refuses them with a clearer message.
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, nil, invalid("Archive is not a valid zip file.")
	}
	if len(zr.File) > lim.MaxFiles {
		return nil, nil, tooLarge("Archive has %d entries; the limit is %d.", len(zr.File), lim.MaxFiles)
	}
	files, dirs, err := scan(zr.File, lim.MaxUnpackedBytes)
	if err != nil {
		return nil, nil, err
	}
	a := &Archive{dirs: dirs, lim: lim}
	if err := a.readManifest(files); err != nil {
		return nil, nil, err
	}
	a.Executable = "bin/" + goos + "-" + goarch + "/" + a.Manifest.Name
	a.exe = a.Executable
	exe := files[a.Executable]
	if exe == nil {
		return nil, nil, invalid("No executable for %s/%s: expected '%s'.", goos, goarch, a.Executable)
	}
	if err := checkExecutable(exe, goos, goarch); err != nil {
		return nil, nil, err
	}
	if a.Signature, err = readOptional(files[sigFile], maxSigBytes); err != nil {
		return nil, nil, err
	}
	if a.OpenAPI, err = readOptional(files[openAPIFile], maxOpenAPIBytes); err != nil {
		return nil, nil, err
	}
	return a, files, nil
}

// scan checks every entry's name, type and header, and the declared total
// size. It returns the regular files by name and every directory, explicit
// or implied by a file's path, sorted so that parents come first.
func scan(zfs []*zip.File, maxBytes int64) (map[string]*zip.File, []string, error) {
	files := make(map[string]*zip.File)
	seen := make(map[string]bool)
	var names []string
	var total uint64
	for _, zf := range zfs {
		name, err := checkEntry(zf)
		if err != nil {
			return nil, nil, err
		}
		if seen[name] {
			return nil, nil, invalid("Duplicate entry in archive: %s.", quote(name))
		}
		seen[name] = true
		names = append(names, name)
		if !zf.Mode().IsDir() {
			files[name] = zf
		}
		if zf.UncompressedSize64 > uint64(maxBytes)-total {
			return nil, nil, errTooBig(maxBytes)
		}
		total += zf.UncompressedSize64
	}
	dirs := make(map[string]bool)
	for _, name := range names {
		if files[name] == nil {
			dirs[name] = true
		}
		for i := range len(name) {
			if name[i] != '/' {
				continue
			}
			parent := name[:i]
			if files[parent] != nil {
				return nil, nil, invalid("Entry %s is inside %s, which is a file.", quote(name), quote(parent))
			}
			dirs[parent] = true
		}
	}
	return files, slices.Sorted(maps.Keys(dirs)), nil
}

// checkEntry refuses an entry that is not a safely named, unencrypted
// regular file or directory stored or deflated, and returns its clean name.
func checkEntry(zf *zip.File) (string, error) {
	name, err := checkPath(zf.Name)
	if err != nil {
		return "", err
	}
	if t := zf.Mode().Type(); t&^fs.ModeDir != 0 {
		return "", invalid("Entry %s is %s; only regular files and directories are allowed.", quote(zf.Name), typeName(t))
	}
	if zf.Flags&0x1 != 0 {
		return "", invalid("Entry %s is encrypted.", quote(zf.Name))
	}
	if zf.Method != zip.Store && zf.Method != zip.Deflate {
		return "", invalid("Entry %s uses compression method %d; only Store and Deflate are allowed.", quote(zf.Name), zf.Method)
	}
	return name, nil
}

func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "not a regular file"
	}
}

func errTooBig(maxBytes int64) error {
	return tooLarge("Archive unpacks to more than %d bytes (the limit).", maxBytes)
}

// readManifest reads, parses and validates module_meta.json.
func (a *Archive) readManifest(files map[string]*zip.File) error {
	zf := files[sdk.ManifestFile]
	if zf == nil {
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if path.Base(name) == sdk.ManifestFile {
				return invalid("'%s' must be at the root of the archive, not at %s.", sdk.ManifestFile, quote(name))
			}
		}
		return invalid("Archive must contain '%s'.", sdk.ManifestFile)
	}
	data, err := readSmall(zf, a.lim.MaxManifestBytes)
	if err != nil {
		return err
	}
	m, err := parseManifest(data)
	if err != nil {
		return err
	}
	a.Manifest, a.ManifestJSON = *m, data
	return nil
}

// parseManifest decodes module_meta.json and validates it.
func parseManifest(data []byte) (*sdk.Manifest, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return nil, invalid("'%s' must hold a JSON object.", sdk.ManifestFile)
	}
	var m sdk.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, invalid("'%s' is not valid: %s.", sdk.ManifestFile, strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := ValidateManifest(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readOptional returns the content of zf, or nil when zf is nil.
func readOptional(zf *zip.File, maxBytes int64) ([]byte, error) {
	if zf == nil {
		return nil, nil
	}
	return readSmall(zf, maxBytes)
}

// readSmall returns the content of zf, refusing more than maxBytes.
func readSmall(zf *zip.File, maxBytes int64) ([]byte, error) {
	var buf bytes.Buffer
	_, _, err := inflate(&buf, zf, maxBytes)
	if errors.Is(err, errLimit) {
		return nil, tooLarge("%s is larger than %d bytes.", quote(zf.Name), maxBytes)
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// hashFiles inflates every regular file within the unpacked-size budget and
// records its size, mode and SHA-256.
func (a *Archive) hashFiles(files map[string]*zip.File) error {
	return a.takeFiles(files, func(e entry, budget int64) (int64, string, error) {
		return inflate(io.Discard, e.zf, budget)
	})
}

// takeFiles passes every regular file, in name order, to sink (which
// inflates it, at most budget bytes, and returns its size and SHA-256), keeps
// the total within the unpacked-size limit, and records each file.
func (a *Archive) takeFiles(files map[string]*zip.File, sink func(e entry, budget int64) (int64, string, error)) error {
	budget := a.lim.MaxUnpackedBytes
	for _, name := range slices.Sorted(maps.Keys(files)) {
		e := a.newEntry(name, files[name])
		n, sum, err := sink(e, budget)
		if errors.Is(err, errLimit) {
			return errTooBig(a.lim.MaxUnpackedBytes)
		}
		if err != nil {
			return err
		}
		budget -= n
		a.addEntry(e, n, sum)
	}
	return nil
}

// newEntry returns the entry for a regular file, with the mode it is
// extracted with.
func (a *Archive) newEntry(name string, zf *zip.File) entry {
	mode := fs.FileMode(0o644)
	if name == a.exe {
		mode = 0o755
	}
	return entry{File{Name: name, Mode: mode}, zf}
}

// addEntry records a file once its size and SHA-256 are known.
func (a *Archive) addEntry(e entry, n int64, sum string) {
	e.Size, e.SHA256 = n, sum
	if e.Name == a.exe {
		a.ExecutableSHA256 = sum
	}
	a.entries = append(a.entries, e)
	a.Files = append(a.Files, e.File)
}

// inflate streams the decompressed content of zf into w and returns its size
// and SHA-256. It counts the bytes itself and stops with errLimit as soon as
// more than limit come out, before writing them, whatever the headers claim.
// Errors reading the entry are an [*Error]; errors from w are returned as
// they are.
func inflate(w io.Writer, zf *zip.File, limit int64) (int64, string, error) {
	rc, err := open(zf)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	// The hashing runs beside the inflating and writing.
	h := NewConcurrentSHA256()
	defer h.Close()
	out := io.MultiWriter(h, w)
	bufp := bufs.Get().(*[]byte)
	defer bufs.Put(bufp)
	buf := (*bufp)[:cap(*bufp)]
	var n int64
	for {
		k, err := rc.Read(buf)
		if n += int64(k); n > limit {
			return n, "", errLimit
		}
		if _, werr := out.Write(buf[:k]); werr != nil {
			return n, "", werr
		}
		if err == io.EOF {
			return n, h.Sum(), nil
		}
		if err != nil {
			return n, "", corrupt(zf.Name, err)
		}
	}
}

// open opens zf for reading; its errors are an [*Error].
func open(zf *zip.File) (io.ReadCloser, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, invalid("Entry %s is corrupt: %v.", quote(zf.Name), err)
	}
	return rc, nil
}

// corrupt turns an error reading the content of an entry into an [*Error].
func corrupt(name string, err error) error {
	if errors.Is(err, zip.ErrFormat) {
		// While reading, archive/zip means an entry that inflates past its
		// declared size, and it stops there.
		return invalid("Entry %s is corrupt: it holds more data than its header declares.", quote(name))
	}
	return invalid("Entry %s is corrupt: %v.", quote(name), err)
}
