package sdktest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// Published returns the events the module published, in order, as the core
// stored them: with their assigned ids, sequences and times. A publish the
// fake host refused is not among them.
func (h *Harness) Published() []sdk.Event { return h.host.events() }

// Deliver hands ev to the module over Module.HandleEvent, as the core's event
// bus does, and returns the module's error, if any. An empty ev.ID is
// replaced by a fresh id and a zero ev.Time by the current time.
func (h *Harness) Deliver(ctx context.Context, ev sdk.Event) error {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	_, err := h.module.HandleEvent(ctx, &modulev1.Event{
		Id: ev.ID, Type: ev.Type, Source: ev.Source, Sequence: ev.Sequence,
		TimeUnixNano: ev.Time.UnixNano(), Data: ev.Data,
		RequestId: ev.RequestID, CorrelationId: ev.CorrelationID,
	})
	if err != nil {
		return fmt.Errorf("sdktest: deliver event %s (%s): %w", ev.ID, ev.Type, err)
	}
	return nil
}

// DeliverPublished delivers, in order, every event the module published
// since the last call whose type it subscribes to, in Describe or in its
// manifest; other events are passed over. It stops at the first event the
// module fails to handle and returns the error: the next call starts again
// with that event, as the core retries it.
func (h *Harness) DeliverPublished(ctx context.Context) error {
	h.deliverMu.Lock()
	defer h.deliverMu.Unlock()
	events := h.host.events()
	for ; h.delivered < len(events); h.delivered++ {
		ev := events[h.delivered]
		if !h.subscribed(ev.Type) {
			continue
		}
		if err := h.Deliver(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// subscribed reports whether the core would deliver events of eventType to
// the module.
func (h *Harness) subscribed(eventType string) bool {
	match := func(p string) bool { return sdk.MatchEventType(p, eventType) }
	return slices.ContainsFunc(h.Subscribes(), match) || slices.ContainsFunc(h.manifest.Subscribes, match)
}
