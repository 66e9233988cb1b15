package archive

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chacc/chacc/sdk"
)

// packTime is the modification time of every packed entry, so that packing
// the same folder twice gives the same bytes.
var packTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Pack writes a .chacc archive built from the module folder dir:
// dir/module_meta.json (required), every file under dir/bin/ with its path
// kept (bin/linux-amd64/hello), and dir/openapi.json when present. Nothing
// else in dir is packed. It validates the manifest with [ValidateManifest]
// and requires at least one bin/<goos>-<goarch>/<name> executable; problems
// with the folder's content are an [*Error]. The output is deterministic:
// entries sorted by name, with a fixed modification time; executables are
// stored uncompressed (extracting them at install is then a copy), every
// other file deflated. Pack returns the validated manifest, defaults filled.
func Pack(dir string, w io.Writer) (*sdk.Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, sdk.ManifestFile))
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, err
	}
	names, err := binFiles(dir)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(names, func(name string) bool {
		ok, _ := path.Match("bin/*-*/"+m.Name, name)
		return ok
	}) {
		return nil, invalid("No executable in %s: expected at least one 'bin/<goos>-<goarch>/%s'.", dir, m.Name)
	}
	names = append(names, sdk.ManifestFile)
	switch _, err := os.Stat(filepath.Join(dir, openAPIFile)); {
	case err == nil:
		names = append(names, openAPIFile)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	slices.Sort(names)
	zw := zip.NewWriter(w)
	for _, name := range names {
		if err := addFile(zw, dir, name); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// binFiles lists the regular files under dir/bin as archive paths, refusing
// anything else and any name [Read] would refuse.
func binFiles(dir string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(filepath.Join(dir, "bin"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return invalid("Cannot pack %s: only regular files can be packed.", quote(name))
		}
		if _, err := checkPath(name); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

func addFile(zw *zip.Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: packTime}
	hdr.SetMode(0o644)
	if strings.HasPrefix(name, "bin/") {
		// Executables are stored, not deflated: inflating one of 25 MB took
		// ~150 ms of every install, the largest part of upload → first
		// answer; stored, extracting it is a copy. The archive is about
		// twice as large.
		hdr.Method = zip.Store
		hdr.SetMode(0o755)
	}
	fw, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fw, f); err != nil {
		return fmt.Errorf("archive: pack %s: %w", name, err)
	}
	return nil
}

// HashFile returns the lowercase hex SHA-256 of the file at path, as
// [Archive.ExecutableSHA256] is computed, so a caller can check an extracted
// executable against its pin before starting it.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
