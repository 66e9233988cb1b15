package modules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/store"
)

// The archive of an installed module is kept in the database, where other
// core instances extract it from. Writing it is the slowest part of an
// install by far (a 25 MB blob takes 300-650 ms on SQLite and more on
// Postgres, longer than validating, extracting and starting the module), and
// nothing on the installing core needs it: its files are on disk. So an
// install commits the record (and its audit entry) before answering, and
// stores the archive just after, in the background, holding the lifecycle
// lock, with a second notification. Until the archive is there, other cores
// leave the new version alone (Reconcile waits for it: [Manager.archiveReady])
// and keep serving what they have; the notification then brings them along.
// A core that stops before it has stored an archive stores it at its next
// start, from .modules_installed ([Manager.backfillArchives]). A failed
// install writes no archive, as before.

// An Upload is an archive received into a file of its own in
// .modules_installed ([Manager.Receive]). Install takes it over; Remove
// discards one that is not installed.
type Upload struct {
	path   string
	size   int64
	sha256 string // hex, computed as the archive arrived
}

// Size is the archive's length in bytes.
func (u *Upload) Size() int64 { return u.size }

// Remove deletes the file, unless Install moved it into place.
func (u *Upload) Remove() { _ = os.Remove(u.path) }

// ReadError is an error reading the upload itself (the client's side), as
// opposed to one writing it down.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read upload: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// readErrors records the error r returns other than io.EOF.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Receive writes r, up to limit bytes, to a new upload file, hashing it as it
// arrives: the archive is not held in memory, and is written once, where it
// is kept, and never read again to be hashed. An
// archive over limit is *[core.Error] ARCHIVE_TOO_LARGE; failing to read r is
// *[ReadError]; any other error is the server's.
func (m *Manager) Receive(r io.Reader, limit int64) (*Upload, error) {
	f, err := os.CreateTemp(m.cfg.InstalledDir, uploadPrefix+"*")
	if err != nil {
		return nil, err
	}
	u := &Upload{path: f.Name()}
	src := &readErrors{r: io.LimitReader(r, limit+1)}
	h := archive.NewConcurrentSHA256()
	defer h.Close()
	bufp := copyBufPool.Get().(*[]byte)
	var n int64
	withExtraProc(func() { n, err = copyFull(io.MultiWriter(f, h), src, *bufp) })
	if err == nil {
		err = f.Chmod(0o644) // as every kept archive (CreateTemp makes 0600)
	}
	copyBufPool.Put(bufp)
	if src.err != nil {
		err = &ReadError{src.err}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = core.Errorf(core.ETOOLARGE, "ARCHIVE_TOO_LARGE", "Upload is larger than the limit of %d bytes.", limit)
	}
	if err != nil {
		u.Remove()
		return nil, err
	}
	u.size, u.sha256 = n, h.Sum()
	return u, nil
}

// copyFull copies src to dst like io.CopyBuffer, but fills buf before every
// write: a multipart part reads 4 KiB at a time, and a 25 MB upload written
// (and handed to the hashing goroutine) as it comes took 6,000 writes.
func copyFull(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := 0, error(nil)
		for k < len(buf) && err == nil {
			var r int
			r, err = src.Read(buf[k:])
			k += r
		}
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// archiveWriteTimeout bounds one attempt at storing an archive.
const archiveWriteTimeout = 2 * time.Minute

// storeArchiveLater stores the archive rec names, from .modules_installed,
// unless the module is uninstalled or replaced first. It retries a failed
// write a few times; Close waits for it.
func (m *Manager) storeArchiveLater(rec store.Module) {
	name, version, sum := rec.Name, rec.Version, rec.ArchiveSHA256
	m.pending.Add(1)
	go func() {
		defer m.pending.Done()
		for attempt := 0; ; attempt++ {
			var err error
			withExtraProc(func() { err = m.storeArchive(name, version, sum) })
			if err == nil {
				return
			}
			if attempt == 4 {
				m.log.Error("could not store the module archive in the database; other cores cannot install it until this core restarts",
					"module", name, "version", version, "error", err)
				return
			}
			m.log.Warn("store module archive; retrying", "module", name, "version", version, "error", err)
			select {
			case <-m.closing:
				return
			case <-time.After(time.Second << attempt):
			}
		}
	}()
}

// extraProc counts the goroutines in withExtraProc; base is GOMAXPROCS as
// it was before the first.
var extraProc struct {
	sync.Mutex
	n, base int
}

// withExtraProc runs f, a long CPU-heavy job of an install (receiving and
// hashing the upload, extracting it, storing the archive afterwards), with
// GOMAXPROCS one higher, so that f does not take the CPUs the core serves
// requests on (CHACC_GOMAXPROCS, one on a 2-CPU machine), and its hashing
// goroutine runs beside it: storing a 25 MB archive in SQLite alone holds a
// CPU for a few hundred milliseconds, and would otherwise hold up the first
// requests to the module just installed. Jobs running at once share the one
// extra. Restoring sets GOMAXPROCS explicitly, so a core
// left on Go's default (CHACC_GOMAXPROCS=0) stops following later changes
// of its CPU limit (cgroup) after its first install.
func withExtraProc(f func()) {
	extraProc.Lock()
	if extraProc.n == 0 {
		extraProc.base = runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(extraProc.base + 1)
	}
	extraProc.n++
	extraProc.Unlock()
	defer func() {
		extraProc.Lock()
		if extraProc.n--; extraProc.n == 0 {
			runtime.GOMAXPROCS(extraProc.base)
		}
		extraProc.Unlock()
	}()
	f()
}

// storeArchive writes the archive if the record still names it, replaces
// the module's other archives, and notifies the other cores.
func (m *Manager) storeArchive(name, version, sum string) error {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), archiveWriteTimeout)
	defer cancel()
	var rec store.Module
	if err := m.db.WithContext(ctx).Where("name = ?", name).Take(&rec).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil // uninstalled meanwhile
		}
		return err
	}
	if rec.Version != version || rec.ArchiveSHA256 != sum {
		return nil // replaced meanwhile; that install stores its own
	}
	data, ok := m.localArchive(rec)
	if !ok {
		return fmt.Errorf("the archive %s-%s.chacc in %s is missing or altered", name, version, m.cfg.InstalledDir)
	}
	return m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("name = ?", name).Delete(&store.ModuleArchive{}).Error; err != nil {
			return err
		}
		if err := tx.Create(&store.ModuleArchive{Name: name, Version: version, SHA256: sum, Data: data, CreatedAt: time.Now().UTC()}).Error; err != nil {
			return err
		}
		return m.db.NotifyModules(tx)
	})
}

// archiveReady reports whether the database holds the archive rec names.
func (m *Manager) archiveReady(ctx context.Context, rec store.Module) bool {
	var n int64
	err := m.db.WithContext(ctx).Model(&store.ModuleArchive{}).
		Where("name = ? AND version = ? AND sha256 = ?", rec.Name, rec.Version, rec.ArchiveSHA256).Count(&n).Error
	return err == nil && n > 0
}

// localArchive returns the archive rec names from .modules_installed, when
// it is there and its SHA-256 is the recorded one.
func (m *Manager) localArchive(rec store.Module) ([]byte, bool) {
	data, err := os.ReadFile(filepath.Join(m.cfg.InstalledDir, rec.Name+"-"+rec.Version+".chacc"))
	if err != nil {
		return nil, false
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]) == rec.ArchiveSHA256
}

// backfillArchives stores the archives of recs that the database lacks (an
// install whose core stopped before storing it) from .modules_installed.
func (m *Manager) backfillArchives(recs []store.Module) {
	for _, rec := range recs {
		if m.archiveReady(context.Background(), rec) {
			continue
		}
		if _, ok := m.localArchive(rec); ok {
			m.log.Info("storing a module archive the database lacks", "module", rec.Name, "version", rec.Version)
			m.storeArchiveLater(rec)
		}
	}
}
