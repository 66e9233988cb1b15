package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
)

// receivedID is one id the module learnt from a hello.event. It lives in the
// table received_ids (gorm's name for the type).
type receivedID struct {
	// Seq orders the rows by arrival.
	Seq int64 `gorm:"primaryKey"`
	// ID is unique: an id is recorded once, however often it arrives.
	ID string `gorm:"size:128;not null;uniqueIndex"`
	// EventID is the event that first brought the id.
	EventID    string    `gorm:"size:64;not null"`
	ReceivedAt time.Time `gorm:"not null;autoCreateTime"`
}

// migrations are the versioned schema changes, applied in order at start-up
// and recorded in the table "migrations". Never edit one that has shipped:
// append a new one.
var migrations = []*gormigrate.Migration{
	{
		ID: "0001_received_ids",
		Migrate: func(tx *gorm.DB) error {
			// A copy of the model as this migration created it, so that
			// later changes to receivedID do not rewrite history.
			type receivedID struct {
				Seq        int64     `gorm:"primaryKey"`
				ID         string    `gorm:"size:128;not null;uniqueIndex"`
				EventID    string    `gorm:"size:64;not null"`
				ReceivedAt time.Time `gorm:"not null"`
			}
			return tx.Migrator().CreateTable(&receivedID{})
		},
		Rollback: func(tx *gorm.DB) error { return tx.Migrator().DropTable("received_ids") },
	},
}

// store keeps the module's data in its own database namespace.
type store struct {
	db *gorm.DB
}

// openStore opens the namespace the core gave the module and brings its
// schema up to date.
func openStore(ctx context.Context, d sdk.Database) (*store, error) {
	db, err := sdkdb.Open(d)
	if err != nil {
		return nil, err
	}
	opts := *gormigrate.DefaultOptions
	opts.UseTransaction = true // a failed migration leaves nothing half-done
	if err := gormigrate.New(db.WithContext(ctx), &opts, migrations).Migrate(); err != nil {
		sdkdb.Close(db)
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &store{db: db}, nil
}

// Record stores id as received with event eventID. An id already stored is
// left as it is, so that a redelivered event, or a second event with the
// same id, changes nothing and succeeds.
func (s *store) Record(ctx context.Context, id, eventID string) error {
	return s.db.WithContext(ctx).
		Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
		Create(&receivedID{ID: id, EventID: eventID}).Error
}

// IDs returns every recorded id in the order received.
func (s *store) IDs(ctx context.Context) ([]string, error) {
	ids := []string{}
	err := s.db.WithContext(ctx).Model(&receivedID{}).Order("seq").Pluck("id", &ids).Error
	return ids, err
}

// Ping checks that the database answers.
func (s *store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close releases the database connections.
func (s *store) Close() error { return sdkdb.Close(s.db) }
