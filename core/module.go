package core

import (
	"time"

	"github.com/chacc/chacc/sdk"
)

// State is what a module's process is doing.
type State string

// Module states.
const (
	StateRunning  State = "running"  // serving
	StateStarting State = "starting" // starting or restarting after a crash
	StateStopped  State = "stopped"  // disabled, or not started
	StateCrashed  State = "crashed"  // crashed too often; waits for an operator
	StateFailed   State = "failed"   // enabled but could not start
)

// ModuleStatus is one installed module as the operator sees it.
type ModuleStatus struct {
	sdk.Manifest
	IsEnabled   bool      `json:"is_enabled"`
	State       State     `json:"state"`
	PID         int       `json:"pid,omitempty"`
	Restarts    int       `json:"restarts"`
	LastError   string    `json:"last_error,omitempty"`
	StderrTail  []string  `json:"stderr_tail,omitempty"`
	Prefixes    []string  `json:"mounted_prefixes"`
	Routes      []Route   `json:"routes"`
	Subscribed  []string  `json:"subscribed_events"`
	ArchiveSHA  string    `json:"archive_sha256"`
	ExecSHA     string    `json:"executable_sha256"`
	InstalledAt time.Time `json:"installed_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	Signature   Signature `json:"signature"`
}

// Signature says who signed an installed module's archive.
type Signature struct {
	// Signed is true when the archive carried a valid module.sig.
	Signed bool `json:"signed"`
	// KeyID identifies the signer's key (16 hex digits); empty when unsigned.
	KeyID string `json:"key_id"`
	// Trusted is true when the signer was in CHACC_TRUSTED_KEYS at install.
	Trusted bool `json:"trusted"`
}

// Route is a route a running module declared.
type Route struct {
	Method       string   `json:"method"`
	Path         string   `json:"path"`
	MinRole      string   `json:"min_role,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	RateLimit    string   `json:"rate_limit,omitempty"`
	MaxBodyBytes int64    `json:"max_body_bytes,omitempty"`
	Summary      string   `json:"summary,omitempty"`
}
