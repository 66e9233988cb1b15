package store

import (
	"context"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
)

// migrationsTable records which migrations have run.
const migrationsTable = "chacc_migrations"

// Migrate runs the migrations that have not run yet, all in one transaction.
// Running it again does nothing. Core instances sharing a database may call
// it at the same time: on Postgres an advisory lock makes them take turns,
// and on SQLite the transaction's immediate write lock does.
func (db *DB) Migrate(ctx context.Context) error {
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := db.lockTx(tx, lockMigrate); err != nil {
			return err
		}
		// Our transaction wraps gormigrate's work, so it must not open its own.
		opts := &gormigrate.Options{TableName: migrationsTable, UseTransaction: false}
		return gormigrate.New(tx, opts, migrations).Migrate()
	})
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// migrations is the schema's history, oldest first. A migration never
// changes once released: it declares copies of the models as they were then,
// so that later changes to models.go do not rewrite it. Index names are
// explicit because the copies' type names differ from the table names.
var migrations = []*gormigrate.Migration{
	{
		ID: "202611230001_init",
		Migrate: func(tx *gorm.DB) error {
			type module struct {
				Name             string `gorm:"primaryKey;size:63"`
				Version          string `gorm:"size:64;not null"`
				Enabled          bool   `gorm:"not null"`
				ManifestJSON     string `gorm:"type:text;not null"`
				ArchiveSHA256    string `gorm:"size:64;not null"`
				ExecutableSHA256 string `gorm:"size:64;not null"`
				Executable       string `gorm:"size:1024;not null"`
				Subscribes       string `gorm:"type:text;not null;default:'[]'"`
				SignedBy         string `gorm:"size:128;not null;default:''"`
				InstalledAt      time.Time
				UpdatedAt        time.Time
			}
			type moduleArchive struct {
				Name      string `gorm:"primaryKey;size:63"`
				Version   string `gorm:"primaryKey;size:64"`
				SHA256    string `gorm:"size:64;not null"`
				Data      []byte `gorm:"not null"`
				CreatedAt time.Time
			}
			type auditEntry struct {
				ID        int64     `gorm:"primaryKey;autoIncrement"`
				At        time.Time `gorm:"not null;index:idx_audit_log_at"`
				Actor     string    `gorm:"size:255;not null;index:idx_audit_log_actor"`
				Action    string    `gorm:"size:64;not null"`
				Module    string    `gorm:"size:63;not null;index:idx_audit_log_module"`
				Version   string    `gorm:"size:64;not null;default:''"`
				Outcome   string    `gorm:"size:16;not null"`
				ClientIP  string    `gorm:"size:64;not null;default:''"`
				RequestID string    `gorm:"size:128;not null;default:''"`
				Detail    string    `gorm:"type:text;not null;default:''"`
			}
			type event struct {
				Seq           int64     `gorm:"primaryKey;autoIncrement"`
				ID            string    `gorm:"size:64;not null;uniqueIndex:idx_event_outbox_id"`
				Type          string    `gorm:"size:255;not null"`
				Source        string    `gorm:"size:63;not null"`
				Data          []byte    `gorm:"not null"`
				RequestID     string    `gorm:"size:128;not null;default:''"`
				CorrelationID string    `gorm:"size:128;not null;default:''"`
				CreatedAt     time.Time `gorm:"not null;index:idx_event_outbox_created_at"`
			}
			type eventCursor struct {
				Subscriber string `gorm:"primaryKey;size:63"`
				Position   int64  `gorm:"not null"`
				Attempts   int    `gorm:"not null;default:0"`
				LastError  string `gorm:"type:text;not null;default:''"`
				UpdatedAt  time.Time
			}
			return createTables(tx, []table{
				{"modules", &module{}},
				{"module_archives", &moduleArchive{}},
				{"audit_log", &auditEntry{}},
				{"event_outbox", &event{}},
				{"event_cursors", &eventCursor{}},
			})
		},
	},
	{
		// Who signed an installed module's archive: signed_by (from the
		// first migration) holds the signer's public key, these its key id
		// and whether it was trusted when installed.
		ID: "202612010001_module_signature",
		Migrate: func(tx *gorm.DB) error {
			type module struct {
				SignatureKeyID   string `gorm:"size:64;not null;default:''"`
				SignatureTrusted bool   `gorm:"not null;default:false"`
			}
			m := tx.Table("modules").Migrator()
			for _, field := range []string{"SignatureKeyID", "SignatureTrusted"} {
				if err := m.AddColumn(&module{}, field); err != nil {
					return fmt.Errorf("add modules.%s: %w", field, err)
				}
			}
			return nil
		},
	},
}

// table names the table a migration's model copy describes.
type table struct {
	name  string
	model any
}

// createTables creates the tables in order.
func createTables(tx *gorm.DB, tables []table) error {
	for _, t := range tables {
		if err := tx.Table(t.name).Migrator().CreateTable(t.model); err != nil {
			return fmt.Errorf("create %s: %w", t.name, err)
		}
	}
	return nil
}
