package store

import "time"

// Module is the desired state of one installed module.
type Module struct {
	Name             string `gorm:"primaryKey;size:63"`
	Version          string `gorm:"size:64;not null"`
	Enabled          bool   `gorm:"not null"`
	ManifestJSON     string `gorm:"type:text;not null"`
	ArchiveSHA256    string `gorm:"size:64;not null"`
	ExecutableSHA256 string `gorm:"size:64;not null"`
	// Executable is the archive-relative path of the executable.
	Executable string `gorm:"size:1024;not null"`
	// Subscribes is a JSON array of the event types the module subscribes to.
	Subscribes string `gorm:"type:text;not null;default:'[]'"`
	// SignedBy is the public key ("ed25519:<base64>") that signed the
	// archive; empty when it is unsigned.
	SignedBy string `gorm:"size:128;not null;default:''"`
	// SignatureKeyID is the signer's key id; empty when unsigned.
	SignatureKeyID string `gorm:"size:64;not null;default:''"`
	// SignatureTrusted is whether the signer was in CHACC_TRUSTED_KEYS when
	// the archive was installed.
	SignatureTrusted bool `gorm:"not null;default:false"`
	InstalledAt      time.Time
	UpdatedAt        time.Time
}

// TableName returns "modules".
func (Module) TableName() string { return "modules" }

// ModuleArchive is an archive as uploaded, kept so that every core instance
// can extract it.
type ModuleArchive struct {
	Name      string `gorm:"primaryKey;size:63"`
	Version   string `gorm:"primaryKey;size:64"`
	SHA256    string `gorm:"size:64;not null"`
	Data      []byte `gorm:"not null"`
	CreatedAt time.Time
}

// TableName returns "module_archives".
func (ModuleArchive) TableName() string { return "module_archives" }

// AuditEntry records one lifecycle change: who did what to which module,
// when, from where, and how it ended.
type AuditEntry struct {
	ID     int64     `gorm:"primaryKey;autoIncrement" json:"id"`
	At     time.Time `gorm:"not null;index" json:"at"`
	Actor  string    `gorm:"size:255;not null;index" json:"actor"`
	Action string    `gorm:"size:64;not null" json:"action"` // install, upgrade, enable, disable, uninstall, ...
	Module string    `gorm:"size:63;not null;index" json:"module"`
	// Version is the module version the action concerned, if any.
	Version   string `gorm:"size:64;not null;default:''" json:"version"`
	Outcome   string `gorm:"size:16;not null" json:"outcome"` // "ok" or "failed"
	ClientIP  string `gorm:"size:64;not null;default:''" json:"client_ip"`
	RequestID string `gorm:"size:128;not null;default:''" json:"request_id"`
	Detail    string `gorm:"type:text;not null;default:''" json:"detail"`
}

// TableName returns "audit_log".
func (AuditEntry) TableName() string { return "audit_log" }

// Event is one published event in the outbox. Seq orders events in publish
// order; see [DB.AppendEvent].
type Event struct {
	Seq           int64     `gorm:"primaryKey;autoIncrement"`
	ID            string    `gorm:"size:64;not null;uniqueIndex"`
	Type          string    `gorm:"size:255;not null"`
	Source        string    `gorm:"size:63;not null"`
	Data          []byte    `gorm:"not null"`
	RequestID     string    `gorm:"size:128;not null;default:''"`
	CorrelationID string    `gorm:"size:128;not null;default:''"`
	CreatedAt     time.Time `gorm:"not null;index"`
}

// TableName returns "event_outbox".
func (Event) TableName() string { return "event_outbox" }

// EventCursor is the delivery position of one subscriber module.
type EventCursor struct {
	Subscriber string `gorm:"primaryKey;size:63"`
	// Position is the Seq of the last event delivered (or skipped).
	Position  int64  `gorm:"not null"`
	Attempts  int    `gorm:"not null;default:0"`
	LastError string `gorm:"type:text;not null;default:''"`
	UpdatedAt time.Time
}

// TableName returns "event_cursors".
func (EventCursor) TableName() string { return "event_cursors" }
