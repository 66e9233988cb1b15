package modules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"time"

	"gorm.io/gorm"

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

// archiveWriteTimeout bounds one attempt at storing an archive.
const archiveWriteTimeout = 2 * time.Minute

// storeArchiveLater stores data as the archive of name and version, unless
// the module is uninstalled or replaced first. It retries a failed write a
// few times; Close waits for it.
func (m *Manager) storeArchiveLater(name, version, sum string, data []byte) {
	m.pending.Add(1)
	go func() {
		defer m.pending.Done()
		for attempt := 0; ; attempt++ {
			err := m.storeArchive(name, version, sum, data)
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

// storeArchive writes the archive if the record still names it, replaces
// the module's other archives, and notifies the other cores.
func (m *Manager) storeArchive(name, version, sum string, data []byte) error {
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
		if data, ok := m.localArchive(rec); ok {
			m.log.Info("storing a module archive the database lacks", "module", rec.Name, "version", rec.Version)
			m.storeArchiveLater(rec.Name, rec.Version, rec.ArchiveSHA256, data)
		}
	}
}
