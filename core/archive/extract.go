package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Extract writes every file of the archive into dir, which must not exist
// yet; its parent must. It extracts into a temporary sibling directory and
// renames that into place, so dir either appears whole or not at all, and on
// any error nothing is left behind. The executable gets mode 0755, other
// files 0644 and directories 0755, whatever the zip says.
//
// Extract does not trust that the archive is unchanged since [Read]: it
// counts the bytes again against Limits.MaxUnpackedBytes while writing and
// re-hashes every file, failing with an [*Error] if a file differs from what
// Read found or the executable's SHA-256 differs from ExecutableSHA256.
// Failures to write are returned as they are.
func (a *Archive) Extract(dir string) error {
	return extractInto(dir, a.dirs, func(tmp string) error {
		budget := a.lim.MaxUnpackedBytes
		for _, e := range a.entries {
			n, sum, err := writeFile(tmp, e, budget)
			if errors.Is(err, errLimit) {
				return errTooBig(a.lim.MaxUnpackedBytes)
			}
			if err != nil {
				return err
			}
			budget -= n
			want := e.SHA256
			if e.Name == a.exe {
				want = a.ExecutableSHA256
			}
			if sum != want {
				return invalid("Entry %s does not match its SHA-256: expected %s, got %s.", quote(e.Name), want, sum)
			}
		}
		return nil
	})
}

// extractInto creates a temporary sibling of dir holding dirs, lets fill
// write the files into it, and renames it to dir; on any error nothing is
// left behind. dir must not exist; its parent must.
func extractInto(dir string, dirs []string, fill func(tmp string) error) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("archive: extract to %s: %w", dir, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(tmp))
		}
	}()
	for _, d := range dirs {
		if err := mkdir(filepath.Join(tmp, filepath.FromSlash(d))); err != nil {
			return err
		}
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// mkdir creates a directory with mode 0755, regardless of the umask.
func mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// writeFile writes one file under root, at most budget bytes, and returns
// its size and SHA-256.
func writeFile(root string, e entry, budget int64) (int64, string, error) {
	f, err := os.OpenFile(filepath.Join(root, filepath.FromSlash(e.Name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, e.Mode)
	if err != nil {
		return 0, "", err
	}
	n, sum, err := inflate(f, e.zf, budget)
	if err == nil {
		err = f.Chmod(e.Mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, sum, err
}
