package sdk

// ManifestFile is the name of the manifest inside a module archive.
const ManifestFile = "module_meta.json"

// Manifest is a module's module_meta.json. The core validates it at install
// time; the installed manifest reaches the module through [Runtime.Manifest].
type Manifest struct {
	// Name identifies the module: ^[a-z][a-z0-9_-]{1,62}$. Required.
	Name string `json:"name"`
	// DisplayName is shown to people. Default: Name.
	DisplayName string `json:"display_name,omitempty"`
	// Version is a semantic version. Required.
	Version string `json:"version"`
	Author  string `json:"author,omitempty"`
	// Description is one or two sentences on what the module does.
	Description string `json:"description,omitempty"`
	// BasePathPrefix is where the module's routes are mounted. Default: "/<name>".
	BasePathPrefix string `json:"base_path_prefix,omitempty"`
	// ExtraPrefixes are more mount points the module serves.
	ExtraPrefixes []string `json:"extra_prefixes,omitempty"`
	Tags          []string `json:"tags,omitempty"`
	License       string   `json:"license,omitempty"`
	Homepage      string   `json:"homepage,omitempty"`
	// RequiredChaccVersion is a semver range the core's version must satisfy.
	RequiredChaccVersion string `json:"required_chacc_version,omitempty"`
	// Dependencies maps a module name to a semver range it must satisfy.
	Dependencies map[string]string `json:"dependencies,omitempty"`
	// Subscribes lists the event types delivered to the module; "*" is every
	// type and "outage.*" every type under "outage.".
	Subscribes []string `json:"subscribes,omitempty"`
	// Publishes lists the event types the module may publish (same patterns).
	Publishes []string `json:"publishes,omitempty"`
	// Capabilities names what the module provides to the core, e.g.
	// "authenticator".
	Capabilities []string `json:"capabilities,omitempty"`
	// Config describes the settings the module reads, by setting name.
	Config map[string]ConfigField `json:"config,omitempty"`
}

// ConfigField describes one setting a module reads from its environment.
type ConfigField struct {
	Type        string `json:"type,omitempty"`
	Description string `json:"description,omitempty"`
	Default     any    `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
}

// Prefixes returns every path prefix the module mounts, the base first.
func (m *Manifest) Prefixes() []string {
	base := m.BasePathPrefix
	if base == "" {
		base = "/" + m.Name
	}
	return append([]string{base}, m.ExtraPrefixes...)
}

// HasCapability reports whether the manifest declares capability c.
func (m *Manifest) HasCapability(c string) bool {
	for _, have := range m.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// MatchEventType reports whether an event type matches a subscription or
// publication pattern: an exact type, "*", or a prefix ending in ".*".
func MatchEventType(pattern, eventType string) bool {
	switch {
	case pattern == "*":
		return true
	case len(pattern) > 2 && pattern[len(pattern)-2:] == ".*":
		p := pattern[:len(pattern)-1] // keep the dot
		return len(eventType) > len(p) && eventType[:len(p)] == p
	default:
		return pattern == eventType
	}
}
