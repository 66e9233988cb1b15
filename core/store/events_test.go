package store_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/core/store/storetest"
)

func TestAppendEvent(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := storetest.Open(t, b)
			ctx := t.Context()

			max, err := db.MaxEventSeq(ctx)
			require.NoError(t, err)
			assert.Zero(t, max)

			var seqs []int64
			for i, typ := range []string{"outage.created", "outage.resolved", "sla.calculated"} {
				ev := store.Event{ID: fmt.Sprint("ev-", i), Type: typ, Source: "outages", Data: []byte(`{}`)}
				inserted, err := db.AppendEvent(ctx, &ev)
				require.NoError(t, err)
				assert.True(t, inserted)
				assert.False(t, ev.CreatedAt.IsZero())
				if len(seqs) > 0 {
					assert.Greater(t, ev.Seq, seqs[len(seqs)-1])
				}
				seqs = append(seqs, ev.Seq)
			}

			dup := store.Event{ID: "ev-0", Type: "other", Source: "sla", Data: []byte(`{"x":1}`)}
			inserted, err := db.AppendEvent(ctx, &dup)
			require.NoError(t, err)
			assert.False(t, inserted)
			assert.Equal(t, seqs[0], dup.Seq)
			assert.Equal(t, "outage.created", dup.Type)
			assert.Equal(t, []byte(`{}`), dup.Data)

			noID := store.Event{Type: "t", Source: "s"}
			inserted, err = db.AppendEvent(ctx, &noID)
			require.NoError(t, err)
			assert.True(t, inserted)
			assert.NotEmpty(t, noID.ID)
			assert.Equal(t, []byte{}, noID.Data)
			seqs = append(seqs, noID.Seq)

			tests := []struct {
				name  string
				after int64
				limit int
				want  []int64
			}{
				{name: "all", after: 0, limit: 0, want: seqs},
				{name: "limit", after: 0, limit: 2, want: seqs[:2]},
				{name: "after", after: seqs[1], limit: 10, want: seqs[2:]},
				{name: "end", after: seqs[3], limit: 10, want: nil},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					events, err := db.EventsAfter(ctx, tc.after, tc.limit)
					require.NoError(t, err)
					assert.Equal(t, tc.want, seqsOf(events))
				})
			}

			max, err = db.MaxEventSeq(ctx)
			require.NoError(t, err)
			assert.Equal(t, seqs[3], max)
		})
	}
}

// TestAppendEventNeverFillsAGap has writers append concurrently while a
// reader follows the outbox by its last Seq, as the event bus does. If an
// event could commit behind the reader's position, the reader would miss it.
func TestAppendEventNeverFillsAGap(t *testing.T) {
	const writers, perWriter = 16, 40
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := storetest.Open(t, b)
			ctx := t.Context()

			written := make(chan struct{})
			var delivered []int64
			readerDone := make(chan error)
			go func() {
				var pos int64
				for {
					// Checked before reading, so the read after the last
					// append sees every event.
					var last bool
					select {
					case <-written:
						last = true
					default:
					}
					events, err := db.EventsAfter(ctx, pos, 0)
					if err != nil {
						readerDone <- err
						return
					}
					for _, ev := range events {
						delivered = append(delivered, ev.Seq)
						pos = ev.Seq
					}
					if last {
						readerDone <- nil
						return
					}
				}
			}()

			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range perWriter {
						ev := store.Event{ID: fmt.Sprintf("w%d-%d", w, i), Type: "t", Source: "s", Data: []byte(`{}`)}
						_, err := db.AppendEvent(ctx, &ev)
						assert.NoError(t, err)
					}
				})
			}
			wg.Wait()
			close(written)
			require.NoError(t, <-readerDone)

			all, err := db.EventsAfter(ctx, 0, 0)
			require.NoError(t, err)
			assert.Len(t, all, writers*perWriter)
			assert.Equal(t, seqsOf(all), delivered, "the reader missed events that committed behind it")
		})
	}
}

func TestCursor(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := storetest.Open(t, b)
			ctx := t.Context()

			_, ok, err := db.Cursor(ctx, "sla")
			require.NoError(t, err)
			assert.False(t, ok)

			steps := []store.EventCursor{
				{Subscriber: "sla", Position: 3},
				{Subscriber: "sla", Position: 3, Attempts: 2, LastError: "down"},
				{Subscriber: "sla", Position: 9},
			}
			for _, want := range steps {
				require.NoError(t, db.SetCursor(ctx, want))
				got, ok, err := db.Cursor(ctx, "sla")
				require.NoError(t, err)
				require.True(t, ok)
				assert.Equal(t, want.Position, got.Position)
				assert.Equal(t, want.Attempts, got.Attempts)
				assert.Equal(t, want.LastError, got.LastError)
				assert.False(t, got.UpdatedAt.IsZero())
			}

			require.NoError(t, db.SetCursor(ctx, store.EventCursor{Subscriber: "webhooks", Position: 1}))
			require.NoError(t, db.DeleteCursor(ctx, "sla"))
			require.NoError(t, db.DeleteCursor(ctx, "sla"), "deleting a missing one")
			_, ok, err = db.Cursor(ctx, "sla")
			require.NoError(t, err)
			assert.False(t, ok)
			other, ok, err := db.Cursor(ctx, "webhooks")
			require.NoError(t, err)
			assert.True(t, ok)
			assert.EqualValues(t, 1, other.Position)
		})
	}
}

func seqsOf(events []store.Event) []int64 {
	var seqs []int64
	for _, ev := range events {
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}
