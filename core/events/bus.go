// Package events is the core's event bus: an outbox in the core database and
// one dispatcher per subscribing module that delivers every matching event at
// least once, in outbox order, retrying with backoff while the module is down.
// With several core instances on one Postgres, only the one holding the
// dispatch lease (store.DB.Leader) delivers, so the order holds cluster-wide.
// The delivery position of each subscriber is stored, so a core restart loses
// and reorders nothing.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/store"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// DeliverFunc hands one event to a subscriber; an error means "retry later".
type DeliverFunc func(ctx context.Context, subscriber string, ev *modulev1.Event) error

// Config tunes the bus.
type Config struct {
	// PollInterval is how often idle dispatchers look for events appended by
	// other core instances. Default: 1s.
	PollInterval time.Duration
	// BackoffMin and BackoffMax bound the retry delay. Default: 100ms, 30s.
	BackoffMin, BackoffMax time.Duration
	// Batch is how many events a dispatcher reads at once. Default: 100.
	Batch int
}

// Bus publishes to the outbox and runs the dispatchers.
type Bus struct {
	db      *store.DB
	deliver DeliverFunc
	cfg     Config
	log     *slog.Logger

	mu   sync.Mutex
	subs map[string]*dispatcher
	ctx  context.Context
	wg   sync.WaitGroup
}

// New returns a bus; nothing runs until Subscribe.
func New(ctx context.Context, db *store.DB, deliver DeliverFunc, cfg Config, log *slog.Logger) *Bus {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	return &Bus{db: db, deliver: deliver, cfg: cfg, log: log, subs: map[string]*dispatcher{}, ctx: ctx}
}

// Publish validates an event and stores it durably in the outbox, then wakes
// the dispatchers. Publishing an id that exists returns the stored event.
func (b *Bus) Publish(ctx context.Context, source string, req *modulev1.PublishRequest) (*store.Event, error) {
	if !validType(req.GetType()) {
		return nil, core.Errorf(core.EINVALID, "INVALID_EVENT", "Invalid event type %q.", req.GetType())
	}
	data := req.GetData()
	if len(data) == 0 {
		data = []byte("null")
	}
	if !json.Valid(data) {
		return nil, core.Errorf(core.EINVALID, "INVALID_EVENT", "Event data is not valid JSON.")
	}
	if len(req.GetId()) > 64 {
		return nil, core.Errorf(core.EINVALID, "INVALID_EVENT", "Event id is longer than 64 characters.")
	}
	ev := &store.Event{
		ID: req.GetId(), Type: req.GetType(), Source: source, Data: data,
		RequestID: req.GetRequestId(), CorrelationID: req.GetCorrelationId(), CreatedAt: time.Now(),
	}
	if _, err := b.db.AppendEvent(ctx, ev); err != nil {
		return nil, fmt.Errorf("append event: %w", err)
	}
	b.WakeAll()
	return ev, nil
}

func validType(t string) bool {
	if t == "" || len(t) > 255 {
		return false
	}
	for i, c := range t {
		ok := c >= 'a' && c <= 'z' || c == '_' || c == '.' && i > 0 || c >= '0' && c <= '9' && i > 0
		if !ok {
			return false
		}
	}
	return t[len(t)-1] != '.'
}

// Subscribe starts (or updates the patterns of) the dispatcher for a module.
// A subscriber seen for the first time starts after the newest event: it does
// not receive history from before it was installed.
func (b *Bus) Subscribe(ctx context.Context, name string, patterns []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d, ok := b.subs[name]; ok {
		d.setPatterns(patterns)
		d.wake()
		return nil
	}
	if len(patterns) == 0 {
		return nil
	}
	if _, ok, err := b.db.Cursor(ctx, name); err != nil {
		return err
	} else if !ok {
		max, err := b.db.MaxEventSeq(ctx)
		if err != nil {
			return err
		}
		if err := b.db.SetCursor(ctx, store.EventCursor{Subscriber: name, Position: max}); err != nil {
			return err
		}
	}
	dctx, cancel := context.WithCancel(b.ctx)
	d := &dispatcher{bus: b, name: name, cancel: cancel, wakeC: make(chan struct{}, 1), doneC: make(chan struct{})}
	d.setPatterns(patterns)
	b.subs[name] = d
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		d.run(dctx)
	}()
	return nil
}

// Unsubscribe stops a module's dispatcher; with forget, its position is
// deleted too (the module was uninstalled).
func (b *Bus) Unsubscribe(ctx context.Context, name string, forget bool) error {
	b.mu.Lock()
	d := b.subs[name]
	delete(b.subs, name)
	b.mu.Unlock()
	if d != nil {
		d.cancel()
		<-d.done()
	}
	if forget {
		return b.db.DeleteCursor(ctx, name)
	}
	return nil
}

// Wake tells a subscriber's dispatcher to try now (the module came up).
func (b *Bus) Wake(name string) {
	b.mu.Lock()
	d := b.subs[name]
	b.mu.Unlock()
	if d != nil {
		d.wake()
	}
}

// WakeAll wakes every dispatcher.
func (b *Bus) WakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range b.subs {
		d.wake()
	}
}

// Lag returns, per subscriber, how many events lie between its position and
// the newest event.
func (b *Bus) Lag(ctx context.Context) (map[string]int64, error) {
	max, err := b.db.MaxEventSeq(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	names := make([]string, 0, len(b.subs))
	for n := range b.subs {
		names = append(names, n)
	}
	b.mu.Unlock()
	out := make(map[string]int64, len(names))
	for _, n := range names {
		c, _, err := b.db.Cursor(ctx, n)
		if err != nil {
			return nil, err
		}
		out[n] = max - c.Position
	}
	return out, nil
}

// Wait waits for every dispatcher to stop (after the bus context ends).
func (b *Bus) Wait() { b.wg.Wait() }

type dispatcher struct {
	bus    *Bus
	name   string
	cancel context.CancelFunc
	wakeC  chan struct{}

	doneC chan struct{} // closed when run returns

	mu       sync.Mutex
	patterns []string
}

func (d *dispatcher) setPatterns(p []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.patterns = append([]string(nil), p...)
}

func (d *dispatcher) matches(t string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.patterns {
		if sdk.MatchEventType(p, t) {
			return true
		}
	}
	return false
}

func (d *dispatcher) wake() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

func (d *dispatcher) done() <-chan struct{} { return d.doneC }

func (d *dispatcher) run(ctx context.Context) {
	defer close(d.doneC)

	b := d.bus
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		progressed, err := d.step(ctx)
		switch {
		case err != nil:
			if backoff == 0 {
				backoff = b.cfg.BackoffMin
			} else {
				backoff = min(backoff*2, b.cfg.BackoffMax)
			}
			d.sleep(ctx, backoff)
		case progressed:
			backoff = 0
		default:
			backoff = 0
			d.sleep(ctx, b.cfg.PollInterval)
		}
	}
}

func (d *dispatcher) sleep(ctx context.Context, dur time.Duration) {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-d.wakeC:
	}
}

// step delivers the next batch; it reports whether the position moved.
func (d *dispatcher) step(ctx context.Context) (bool, error) {
	b := d.bus
	if !b.db.Leader(ctx) {
		return false, nil // another core instance dispatches; look again later
	}
	cur, _, err := b.db.Cursor(ctx, d.name)
	if err != nil {
		return false, err
	}
	evs, err := b.db.EventsAfter(ctx, cur.Position, b.cfg.Batch)
	if err != nil || len(evs) == 0 {
		return false, err
	}
	start := cur.Position
	for _, ev := range evs {
		if d.matches(ev.Type) {
			if err := b.deliver(ctx, d.name, toProto(&ev)); err != nil {
				cur.Attempts++
				cur.LastError = err.Error()
				if cur.Attempts == 1 || cur.Attempts%20 == 0 {
					b.log.Warn("event delivery failed; will retry", "subscriber", d.name, "event", ev.ID, "type", ev.Type, "attempts", cur.Attempts, "error", err)
				}
				_ = b.db.SetCursor(context.WithoutCancel(ctx), cur)
				return cur.Position > start, err
			}
			cur.Attempts, cur.LastError = 0, ""
			cur.Position = ev.Seq
			// The position is stored after every delivered event: a crash
			// redelivers at most the one in flight.
			if err := b.db.SetCursor(context.WithoutCancel(ctx), cur); err != nil {
				return true, err
			}
			continue
		}
		cur.Position = ev.Seq // not for this subscriber: skipped
	}
	return true, b.db.SetCursor(context.WithoutCancel(ctx), cur)
}

func toProto(ev *store.Event) *modulev1.Event {
	return &modulev1.Event{
		Id: ev.ID, Type: ev.Type, Source: ev.Source, Sequence: ev.Seq,
		TimeUnixNano: ev.CreatedAt.UnixNano(), Data: ev.Data,
		RequestId: ev.RequestID, CorrelationId: ev.CorrelationID,
	}
}
