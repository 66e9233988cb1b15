package modules

import (
	"context"
	"time"

	"github.com/chacc/chacc/core/store"
)

func auditEntry(actor Actor, action, module, version string, err error) *store.AuditEntry {
	e := &store.AuditEntry{
		At: time.Now().UTC(), Actor: actor.Name, Action: action, Module: module, Version: version,
		Outcome: "ok", ClientIP: actor.ClientIP, RequestID: actor.RequestID,
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if err != nil {
		e.Outcome, e.Detail = "failed", err.Error()
	}
	return e
}

// audit records a lifecycle attempt outside any transaction (used for
// refusals and failures; successes are recorded with their change).
func (m *Manager) audit(actor Actor, action, module, version string, err error) {
	if dbErr := m.db.Create(auditEntry(actor, action, module, version, err)).Error; dbErr != nil {
		m.log.Error("audit write failed", "error", dbErr, "action", action, "module", module)
	}
}

// AuditFilter selects audit entries; zero fields match everything.
type AuditFilter struct {
	Module, Actor, Action string
	Since, Until          time.Time
	Limit, Offset         int
}

// Audit returns matching entries, newest first, and the total that match.
func (m *Manager) Audit(ctx context.Context, f AuditFilter) ([]store.AuditEntry, int64, error) {
	q := m.db.WithContext(ctx).Model(&store.AuditEntry{})
	if f.Module != "" {
		q = q.Where("module = ?", f.Module)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	var out []store.AuditEntry
	err := q.Order("id DESC").Limit(f.Limit).Offset(f.Offset).Find(&out).Error
	return out, total, err
}
