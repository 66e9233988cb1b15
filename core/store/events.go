package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AppendEvent adds ev to the outbox and reports whether it did. The database
// assigns ev.Seq and CreatedAt is set to now when zero. An empty ev.ID is set
// to a new UUID, and nil Data (what an empty proto bytes field decodes to)
// to empty. When an event with ev.ID is already stored, AppendEvent inserts
// nothing, fills ev with the stored event and returns false: publish is
// idempotent on the event id.
//
// Appends are serialized so that events become visible in Seq order, which
// lets a reader keep only the last Seq it has seen ([DB.EventsAfter]) and
// never miss an event. A Postgres sequence alone does not give that: two
// transactions can take Seq 9 and 10 and commit 10 first, so a reader could
// deliver 10 and then see 9 appear behind its position. Here each append
// holds a transaction-scoped advisory lock from before it takes its Seq
// until it commits, so the next append takes a higher Seq and commits later.
// On SQLite the transaction's immediate write lock does the same. Seqs can
// still skip numbers (an append that rolls back uses one up), but a gap is
// never filled later.
func (db *DB) AppendEvent(ctx context.Context, ev *Event) (inserted bool, err error) {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.Data == nil {
		ev.Data = []byte{}
	}
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := db.lockTx(tx, lockEvents); err != nil {
			return err
		}
		var stored Event
		res := tx.Where("id = ?", ev.ID).Limit(1).Find(&stored)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected > 0 {
			*ev = stored
			return nil
		}
		ev.Seq = 0
		inserted = true
		return tx.Create(ev).Error
	})
	if err != nil {
		return false, fmt.Errorf("store: append event %s: %w", ev.ID, err)
	}
	return inserted, nil
}

// EventsAfter returns at most limit events with a Seq greater than seq, in
// Seq order. A limit of zero or less means no limit.
func (db *DB) EventsAfter(ctx context.Context, seq int64, limit int) ([]Event, error) {
	var events []Event
	q := db.WithContext(ctx).Where("seq > ?", seq).Order("seq")
	if limit > 0 {
		q = q.Limit(limit)
	}
	if err := q.Find(&events).Error; err != nil {
		return nil, fmt.Errorf("store: events after %d: %w", seq, err)
	}
	return events, nil
}

// MaxEventSeq returns the highest Seq in the outbox, or 0 when it is empty.
func (db *DB) MaxEventSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := db.WithContext(ctx).Model(&Event{}).Select("COALESCE(MAX(seq), 0)").Scan(&seq).Error
	if err != nil {
		return 0, fmt.Errorf("store: max event seq: %w", err)
	}
	return seq, nil
}

// Cursor returns the cursor of subscriber and whether one is stored.
func (db *DB) Cursor(ctx context.Context, subscriber string) (EventCursor, bool, error) {
	var c EventCursor
	res := db.WithContext(ctx).Where("subscriber = ?", subscriber).Limit(1).Find(&c)
	if res.Error != nil {
		return EventCursor{}, false, fmt.Errorf("store: cursor %s: %w", subscriber, res.Error)
	}
	return c, res.RowsAffected > 0, nil
}

// SetCursor stores c, replacing the cursor of c.Subscriber if there is one.
// UpdatedAt is set to now.
func (db *DB) SetCursor(ctx context.Context, c EventCursor) error {
	c.UpdatedAt = db.NowFunc()
	err := db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&c).Error
	if err != nil {
		return fmt.Errorf("store: set cursor %s: %w", c.Subscriber, err)
	}
	return nil
}

// DeleteCursor deletes the cursor of subscriber. A missing cursor is not an
// error.
func (db *DB) DeleteCursor(ctx context.Context, subscriber string) error {
	err := db.WithContext(ctx).Where("subscriber = ?", subscriber).Delete(&EventCursor{}).Error
	if err != nil {
		return fmt.Errorf("store: delete cursor %s: %w", subscriber, err)
	}
	return nil
}
