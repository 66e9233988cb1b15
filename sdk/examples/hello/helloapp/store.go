package helloapp

import (
	"context"
	"errors"
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
	{
		ID: "0002_items",
		Migrate: func(tx *gorm.DB) error {
			type item struct {
				ID        int64     `gorm:"primaryKey"`
				Name      string    `gorm:"size:128;not null"`
				CreatedAt time.Time `gorm:"not null"`
			}
			return tx.Migrator().CreateTable(&item{})
		},
		Rollback: func(tx *gorm.DB) error { return tx.Migrator().DropTable("items") },
	},
}

// Item is one stored item, in the table items.
type Item struct {
	ID        int64     `gorm:"primaryKey"`
	Name      string    `gorm:"size:128;not null"`
	CreatedAt time.Time `gorm:"not null;autoCreateTime"`
}

// maxItemName is the longest item name, in bytes.
const maxItemName = 128

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Store keeps the module's data in its own database namespace.
type Store struct {
	db *gorm.DB
}

// OpenStore opens the namespace the core gave the module and brings its
// schema up to date.
func OpenStore(ctx context.Context, d sdk.Database) (*Store, error) {
	db, err := sdkdb.Open(d)
	if err != nil {
		return nil, err
	}
	if err := sdkdb.Migrate(ctx, db, d, migrations); err != nil {
		sdkdb.Close(db)
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &Store{db: db}, nil
}

// Record stores id as received with event eventID. An id already stored is
// left as it is, so that a redelivered event, or a second event with the
// same id, changes nothing and succeeds.
func (s *Store) Record(ctx context.Context, id, eventID string) error {
	return s.db.WithContext(ctx).
		Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).
		Create(&receivedID{ID: id, EventID: eventID}).Error
}

// IDs returns every recorded id in the order received.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	ids := []string{}
	err := s.db.WithContext(ctx).Model(&receivedID{}).Order("seq").Pluck("id", &ids).Error
	return ids, err
}

// CreateItem stores a new item named name and returns it.
func (s *Store) CreateItem(ctx context.Context, name string) (Item, error) {
	it := Item{Name: name}
	err := s.db.WithContext(ctx).Create(&it).Error
	return it, err
}

// Item reads the item with primary key id; [ErrNotFound] when there is none.
func (s *Store) Item(ctx context.Context, id int64) (Item, error) {
	var it Item
	err := s.db.WithContext(ctx).Take(&it, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return it, ErrNotFound
	}
	return it, err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return sdkdb.Ping(ctx, s.db) }

// Close releases the database connections.
func (s *Store) Close() error { return sdkdb.Close(s.db) }
