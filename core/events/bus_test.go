package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/core/store/storetest"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// recorder is a subscriber that can be taken down.
type recorder struct {
	mu   sync.Mutex
	down bool
	got  map[string][]string // subscriber → event ids, in delivery order
}

func (r *recorder) deliver(_ context.Context, sub string, ev *modulev1.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return errors.New("subscriber down")
	}
	r.got[sub] = append(r.got[sub], ev.GetId())
	return nil
}

func (r *recorder) setDown(d bool) { r.mu.Lock(); r.down = d; r.mu.Unlock() }

func (r *recorder) ids(sub string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[sub]...)
}

func newBus(t *testing.T, db *store.DB, rec *recorder) (*Bus, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	b := New(ctx, db, rec.deliver, Config{PollInterval: 20 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { cancel(); b.Wait() })
	return b, cancel
}

func publish(t *testing.T, b *Bus, typ string, n int, prefix string) []string {
	var ids []string
	for i := 0; i < n; i++ {
		ev, err := b.Publish(context.Background(), "src", &modulev1.PublishRequest{Type: typ, Data: []byte(`{}`), Id: fmt.Sprintf("%s-%03d", prefix, i)})
		require.NoError(t, err)
		ids = append(ids, ev.ID)
	}
	return ids
}

func TestBusDeliversInOrderRetriesAndSurvivesRestart(t *testing.T) {
	for _, backend := range storetest.Backends(t) {
		t.Run(backend.Name, func(t *testing.T) {
			db := storetest.Open(t, backend)
			rec := &recorder{got: map[string][]string{}}
			b, stop := newBus(t, db, rec)
			ctx := context.Background()

			// History before a subscriber exists is not replayed to it.
			publish(t, b, "a.created", 3, "old")
			require.NoError(t, b.Subscribe(ctx, "s1", []string{"a.*"}))
			require.NoError(t, b.Subscribe(ctx, "s2", []string{"a.created"}))

			want := publish(t, b, "a.created", 20, "x")
			publish(t, b, "b.other", 5, "skip")
			require.Eventually(t, func() bool { return len(rec.ids("s1")) == 20 && len(rec.ids("s2")) == 20 }, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, want, rec.ids("s1"))
			assert.Equal(t, want, rec.ids("s2"))

			// Down: nothing is lost, order is kept once it is back.
			rec.setDown(true)
			more := publish(t, b, "a.updated", 10, "y")
			time.Sleep(100 * time.Millisecond)
			assert.Len(t, rec.ids("s1"), 20)
			lag, err := b.Lag(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(10), lag["s1"]) // the skipped b.other events were passed before
			rec.setDown(false)
			b.Wake("s1")
			require.Eventually(t, func() bool { return len(rec.ids("s1")) == 30 }, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, append(want, more...), rec.ids("s1"))
			assert.Len(t, rec.ids("s2"), 20, "a.updated is not s2's type")

			// A new bus on the same database (a core restart) resumes where
			// the old one stopped.
			rec.setDown(true)
			pending := publish(t, b, "a.created", 5, "z")
			stop()
			b.Wait()
			rec.setDown(false)
			b2, _ := newBus(t, db, rec)
			require.NoError(t, b2.Subscribe(ctx, "s1", []string{"a.*"}))
			require.Eventually(t, func() bool { return len(rec.ids("s1")) == 35 }, 10*time.Second, 10*time.Millisecond)
			assert.Equal(t, pending, rec.ids("s1")[30:])

			// Idempotent publish on the id.
			ev, err := b2.Publish(ctx, "src", &modulev1.PublishRequest{Type: "a.created", Id: "z-000"})
			require.NoError(t, err)
			assert.Equal(t, "z-000", ev.ID)
			time.Sleep(50 * time.Millisecond)
			assert.Len(t, rec.ids("s1"), 35)

			// Forgetting a subscriber deletes its position.
			require.NoError(t, b2.Unsubscribe(ctx, "s1", true))
			_, ok, err := db.Cursor(ctx, "s1")
			require.NoError(t, err)
			assert.False(t, ok)
		})
	}
}

func TestPublishValidates(t *testing.T) {
	db := storetest.Open(t, storetest.Backend{Name: "sqlite"})
	b, _ := newBus(t, db, &recorder{got: map[string][]string{}})
	for _, tc := range []struct {
		name string
		req  *modulev1.PublishRequest
	}{
		{"empty type", &modulev1.PublishRequest{}},
		{"upper case type", &modulev1.PublishRequest{Type: "Outage.Created"}},
		{"trailing dot", &modulev1.PublishRequest{Type: "outage."}},
		{"bad json", &modulev1.PublishRequest{Type: "a.b", Data: []byte("{nope")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Publish(context.Background(), "src", tc.req)
			assert.Error(t, err)
		})
	}
}
