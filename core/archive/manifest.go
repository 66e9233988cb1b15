package archive

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/chacc/chacc/sdk"
)

var (
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,62}$`)
	eventTypeRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)
	capabilityRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	segmentRE    = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
)

// reservedPrefixes are the core's own paths; a module may mount neither them
// nor anything under them. "/" itself is refused as having no segment.
var reservedPrefixes = []string{
	"/modules", "/health", "/audit", "/docs", "/redoc", "/openapi.json", "/metrics", "/static",
}

const (
	maxPrefixLen      = 256
	maxDisplayNameLen = 128
	maxDescriptionLen = 2000
)

// ValidateManifest checks a manifest's fields and fills its defaults:
// DisplayName = Name and BasePathPrefix = "/"+Name. The rules:
//   - name matches ^[a-z][a-z0-9_-]{1,62}$;
//   - version is a strict semantic version, "1.2.3", without a leading "v";
//   - base_path_prefix and each of extra_prefixes starts with "/", has at
//     least one segment and no trailing slash, each segment made of
//     [A-Za-z0-9._~-] and neither "." nor "..", at most 256 characters, and
//     is neither one of the core's paths (/modules, /health, /audit, /docs,
//     /redoc, /openapi.json, /metrics, /static) nor under one; the
//     module's prefixes are distinct and none is nested inside another;
//   - dependencies name valid modules other than this one, each with a
//     semver constraint; required_chacc_version, when set, is a constraint;
//   - subscribes and publishes hold "*", an event type such as
//     "outage.resolved", or an event type followed by ".*";
//   - capabilities match ^[a-z][a-z0-9_-]*$;
//   - display_name has at most 128 characters, description at most 2000.
//
// It reports the first broken rule as an [*Error] of kind [KindInvalid].
func ValidateManifest(m *sdk.Manifest) error {
	if m.Name == "" {
		return invalid("'name' field is missing in '%s'.", sdk.ManifestFile)
	}
	if !nameRE.MatchString(m.Name) {
		return invalid("Invalid module name %s: it must be 2 to 63 lowercase letters, digits, '-' or '_', starting with a letter.", quote(m.Name))
	}
	if m.DisplayName == "" {
		m.DisplayName = m.Name
	}
	if m.BasePathPrefix == "" {
		m.BasePathPrefix = "/" + m.Name
	}
	if m.Version == "" {
		return invalid("'version' field is missing in '%s'.", sdk.ManifestFile)
	}
	if _, err := semver.StrictNewVersion(m.Version); err != nil {
		return invalid("Invalid version %s: it must be a semantic version such as '1.2.3'.", quote(m.Version))
	}
	if err := checkPrefixes(m.Prefixes()); err != nil {
		return err
	}
	for _, dep := range slices.Sorted(maps.Keys(m.Dependencies)) {
		switch {
		case !nameRE.MatchString(dep):
			return invalid("Invalid dependency %s: it is not a valid module name.", quote(dep))
		case dep == m.Name:
			return invalid("Module %s cannot depend on itself.", quote(m.Name))
		}
		if _, err := semver.NewConstraint(m.Dependencies[dep]); err != nil {
			return invalid("Invalid version range %s for dependency %s: %v.", quote(m.Dependencies[dep]), quote(dep), err)
		}
	}
	if m.RequiredChaccVersion != "" {
		if _, err := semver.NewConstraint(m.RequiredChaccVersion); err != nil {
			return invalid("Invalid required_chacc_version %s: %v.", quote(m.RequiredChaccVersion), err)
		}
	}
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"subscribes", m.Subscribes}, {"publishes", m.Publishes}} {
		for _, p := range list.patterns {
			if !validEventPattern(p) {
				return invalid("Invalid event type %s in '%s': expected '*', a type such as 'outage.resolved', or a type followed by '.*'.", quote(p), list.field)
			}
		}
	}
	for _, c := range m.Capabilities {
		if !capabilityRE.MatchString(c) {
			return invalid("Invalid capability %s: it must be lowercase letters, digits, '-' or '_', starting with a letter.", quote(c))
		}
	}
	if utf8.RuneCountInString(m.DisplayName) > maxDisplayNameLen {
		return invalid("'display_name' is longer than %d characters.", maxDisplayNameLen)
	}
	if utf8.RuneCountInString(m.Description) > maxDescriptionLen {
		return invalid("'description' is longer than %d characters.", maxDescriptionLen)
	}
	return nil
}

// checkPrefixes checks each prefix and that none repeats or nests another.
func checkPrefixes(prefixes []string) error {
	for i, p := range prefixes {
		if err := checkPrefix(p); err != nil {
			return err
		}
		for _, q := range prefixes[:i] {
			switch {
			case p == q:
				return invalid("Path prefix %s is declared twice.", quote(p))
			case strings.HasPrefix(p, q+"/"), strings.HasPrefix(q, p+"/"):
				return invalid("Path prefixes %s and %s are nested; a module's prefixes must not overlap.", quote(q), quote(p))
			}
		}
	}
	return nil
}

func checkPrefix(p string) error {
	bad := func(why string) error { return invalid("Invalid path prefix %s: %s.", quote(p), why) }
	switch {
	case len(p) > maxPrefixLen:
		return bad("it is longer than 256 characters")
	case !strings.HasPrefix(p, "/"):
		return bad("it must start with '/'")
	case p == "/":
		return bad("it must have at least one segment")
	case strings.HasSuffix(p, "/"):
		return bad("it must not end with '/'")
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." || !segmentRE.MatchString(seg) {
			return bad("segment " + quote(seg) + " must be letters, digits, '.', '_', '~' or '-', and not '.' or '..'")
		}
	}
	for _, r := range reservedPrefixes {
		if p == r || strings.HasPrefix(p, r+"/") {
			return bad(quote(r) + " is reserved by the core")
		}
	}
	return nil
}

// validEventPattern reports whether p is "*", an event type, or an event
// type followed by ".*", as [sdk.MatchEventType] understands them.
func validEventPattern(p string) bool {
	return p == "*" || eventTypeRE.MatchString(p) ||
		strings.HasSuffix(p, ".*") && eventTypeRE.MatchString(strings.TrimSuffix(p, ".*"))
}
