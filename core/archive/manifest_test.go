package archive

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
)

func TestValidateManifestDefaults(t *testing.T) {
	m := sdk.Manifest{Name: "hello", Version: "1.0.0"}
	require.NoError(t, ValidateManifest(&m))
	assert.Equal(t, "hello", m.DisplayName)
	assert.Equal(t, "/hello", m.BasePathPrefix)

	m = sdk.Manifest{Name: "hello", Version: "1.0.0", DisplayName: "Hello", BasePathPrefix: "/api/v1/hello"}
	require.NoError(t, ValidateManifest(&m))
	assert.Equal(t, "Hello", m.DisplayName)
	assert.Equal(t, "/api/v1/hello", m.BasePathPrefix)
}

func TestValidateManifestAccepts(t *testing.T) {
	tests := []struct {
		name   string
		modify func(m *sdk.Manifest)
	}{
		{name: "minimal", modify: func(*sdk.Manifest) {}},
		{name: "two-letter name", modify: func(m *sdk.Manifest) { m.Name = "ab" }},
		{name: "63-letter name", modify: func(m *sdk.Manifest) { m.Name = "a" + strings.Repeat("b", 62) }},
		{name: "name with digits, dash and underscore", modify: func(m *sdk.Manifest) { m.Name = "my_mod-2" }},
		{name: "prerelease version", modify: func(m *sdk.Manifest) { m.Version = "2.0.0-rc.1+build.5" }},
		{name: "every prefix character", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/api/v1.2/a_b~c-d" }},
		{name: "prefix named like a core path", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/healthz" }},
		{name: "core path below a segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/api/docs" }},
		{name: "256-character prefix", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/" + strings.Repeat("a", 255) }},
		{name: "sibling prefixes", modify: func(m *sdk.Manifest) {
			m.BasePathPrefix = "/api/v1/payments"
			m.ExtraPrefixes = []string{"/api/v1/wallets", "/api/v1/payments-old"}
		}},
		{name: "dependencies", modify: func(m *sdk.Manifest) { m.Dependencies = map[string]string{"auth": ">=1.0.0, <2", "sla": "^1.2"} }},
		{name: "required chacc version", modify: func(m *sdk.Manifest) { m.RequiredChaccVersion = "~1.4" }},
		{name: "event patterns", modify: func(m *sdk.Manifest) {
			m.Subscribes = []string{"*", "outage.resolved", "outage.*", "sla.v2.calculated_1"}
			m.Publishes = []string{"payment.completed", "payment.*"}
		}},
		{name: "capabilities", modify: func(m *sdk.Manifest) { m.Capabilities = []string{"authenticator", "rate-limit_2"} }},
		{name: "long display name and description", modify: func(m *sdk.Manifest) {
			m.DisplayName = strings.Repeat("é", 128)
			m.Description = strings.Repeat("é", 2000)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sdk.Manifest{Name: "hello", Version: "1.0.0"}
			tc.modify(&m)
			assert.NoError(t, ValidateManifest(&m))
		})
	}
}

func TestValidateManifestRefuses(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(m *sdk.Manifest)
		wantMsg string
	}{
		{name: "missing name", modify: func(m *sdk.Manifest) { m.Name = "" }, wantMsg: "'name' field is missing in 'module_meta.json'."},
		{name: "upper-case name", modify: func(m *sdk.Manifest) { m.Name = "Hello" }, wantMsg: "Invalid module name 'Hello': it must be 2 to 63 lowercase letters, digits, '-' or '_', starting with a letter."},
		{name: "one-letter name", modify: func(m *sdk.Manifest) { m.Name = "a" }, wantMsg: "Invalid module name 'a'"},
		{name: "64-letter name", modify: func(m *sdk.Manifest) { m.Name = "a" + strings.Repeat("b", 63) }, wantMsg: "Invalid module name"},
		{name: "name starting with a digit", modify: func(m *sdk.Manifest) { m.Name = "1abc" }, wantMsg: "Invalid module name '1abc'"},
		{name: "name with a slash", modify: func(m *sdk.Manifest) { m.Name = "a/b" }, wantMsg: "Invalid module name 'a/b'"},
		{name: "name with a dot", modify: func(m *sdk.Manifest) { m.Name = "a.b" }, wantMsg: "Invalid module name 'a.b'"},

		{name: "missing version", modify: func(m *sdk.Manifest) { m.Version = "" }, wantMsg: "'version' field is missing in 'module_meta.json'."},
		{name: "version with a v", modify: func(m *sdk.Manifest) { m.Version = "v1.0.0" }, wantMsg: "Invalid version 'v1.0.0': it must be a semantic version such as '1.2.3'."},
		{name: "short version", modify: func(m *sdk.Manifest) { m.Version = "1.0" }, wantMsg: "Invalid version '1.0'"},
		{name: "not a version", modify: func(m *sdk.Manifest) { m.Version = "latest" }, wantMsg: "Invalid version 'latest'"},

		{name: "prefix without a leading slash", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "hello" }, wantMsg: "Invalid path prefix 'hello': it must start with '/'."},
		{name: "prefix with a trailing slash", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/hello/" }, wantMsg: "Invalid path prefix '/hello/': it must not end with '/'."},
		{name: "root prefix", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/" }, wantMsg: "Invalid path prefix '/': it must have at least one segment."},
		{name: "empty segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a//b" }, wantMsg: "segment '' must be"},
		{name: "dot segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a/./b" }, wantMsg: "segment '.' must be"},
		{name: "dot-dot segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a/../modules" }, wantMsg: "segment '..' must be"},
		{name: "space in a segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a b" }, wantMsg: "segment 'a b' must be"},
		{name: "percent in a segment", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a%2e" }, wantMsg: "segment 'a%2e' must be"},
		{name: "route parameter", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/:id" }, wantMsg: "segment ':id' must be"},
		{name: "wildcard", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/a/*" }, wantMsg: "segment '*' must be"},
		{name: "prefix over 256 characters", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/" + strings.Repeat("a", 256) }, wantMsg: "it is longer than 256 characters."},
		{name: "reserved prefix", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/modules" }, wantMsg: "Invalid path prefix '/modules': '/modules' is reserved by the core."},
		{name: "under a reserved prefix", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/docs/hello" }, wantMsg: "'/docs' is reserved by the core."},
		{name: "default prefix reserved", modify: func(m *sdk.Manifest) { m.Name = "metrics" }, wantMsg: "Invalid path prefix '/metrics': '/metrics' is reserved by the core."},
		{name: "every reserved prefix: health", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/health/ready"} }, wantMsg: "'/health' is reserved"},
		{name: "every reserved prefix: audit", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/audit"} }, wantMsg: "'/audit' is reserved"},
		{name: "every reserved prefix: redoc", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/redoc"} }, wantMsg: "'/redoc' is reserved"},
		{name: "every reserved prefix: openapi.json", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/openapi.json"} }, wantMsg: "'/openapi.json' is reserved"},
		{name: "every reserved prefix: static", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/static/x"} }, wantMsg: "'/static' is reserved"},
		{name: "bad extra prefix", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/ok", "bad"} }, wantMsg: "Invalid path prefix 'bad'"},
		{name: "duplicate prefix", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/hello"} }, wantMsg: "Path prefix '/hello' is declared twice."},
		{name: "nested prefix", modify: func(m *sdk.Manifest) { m.ExtraPrefixes = []string{"/hello/v2"} }, wantMsg: "Path prefixes '/hello' and '/hello/v2' are nested; a module's prefixes must not overlap."},
		{name: "enclosing prefix", modify: func(m *sdk.Manifest) { m.BasePathPrefix = "/api/v1/x"; m.ExtraPrefixes = []string{"/api/v1"} }, wantMsg: "Path prefixes '/api/v1/x' and '/api/v1' are nested"},

		{name: "invalid dependency name", modify: func(m *sdk.Manifest) { m.Dependencies = map[string]string{"Auth": "1.0.0"} }, wantMsg: "Invalid dependency 'Auth': it is not a valid module name."},
		{name: "dependency on itself", modify: func(m *sdk.Manifest) { m.Dependencies = map[string]string{"hello": "1.0.0"} }, wantMsg: "Module 'hello' cannot depend on itself."},
		{name: "invalid dependency range", modify: func(m *sdk.Manifest) { m.Dependencies = map[string]string{"auth": ">>1"} }, wantMsg: "Invalid version range '>>1' for dependency 'auth'"},
		{name: "first bad dependency by name", modify: func(m *sdk.Manifest) { m.Dependencies = map[string]string{"zeta": "x", "alpha": "y"} }, wantMsg: "for dependency 'alpha'"},
		{name: "invalid required chacc version", modify: func(m *sdk.Manifest) { m.RequiredChaccVersion = "newest" }, wantMsg: "Invalid required_chacc_version 'newest'"},

		{name: "subscription with capitals", modify: func(m *sdk.Manifest) { m.Subscribes = []string{"Outage.created"} }, wantMsg: "Invalid event type 'Outage.created' in 'subscribes'"},
		{name: "subscription with a trailing dot", modify: func(m *sdk.Manifest) { m.Subscribes = []string{"outage."} }, wantMsg: "Invalid event type 'outage.'"},
		{name: "subscription with a bare wildcard segment", modify: func(m *sdk.Manifest) { m.Subscribes = []string{"outage.*.x"} }, wantMsg: "Invalid event type 'outage.*.x'"},
		{name: "subscription with a prefix wildcard", modify: func(m *sdk.Manifest) { m.Subscribes = []string{"outage*"} }, wantMsg: "Invalid event type 'outage*'"},
		{name: "empty subscription", modify: func(m *sdk.Manifest) { m.Subscribes = []string{""} }, wantMsg: "Invalid event type ''"},
		{name: "bad publication", modify: func(m *sdk.Manifest) { m.Publishes = []string{".*"} }, wantMsg: "Invalid event type '.*' in 'publishes'"},
		{name: "bad capability", modify: func(m *sdk.Manifest) { m.Capabilities = []string{"Auth"} }, wantMsg: "Invalid capability 'Auth'"},
		{name: "empty capability", modify: func(m *sdk.Manifest) { m.Capabilities = []string{""} }, wantMsg: "Invalid capability ''"},
		{name: "display name over 128 characters", modify: func(m *sdk.Manifest) { m.DisplayName = strings.Repeat("a", 129) }, wantMsg: "'display_name' is longer than 128 characters."},
		{name: "description over 2000 characters", modify: func(m *sdk.Manifest) { m.Description = strings.Repeat("a", 2001) }, wantMsg: "'description' is longer than 2000 characters."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sdk.Manifest{Name: "hello", Version: "1.0.0"}
			tc.modify(&m)
			err := ValidateManifest(&m)
			var aerr *Error
			require.ErrorAs(t, err, &aerr)
			assert.Equal(t, KindInvalid, aerr.Kind)
			assert.Contains(t, aerr.Msg, tc.wantMsg)
		})
	}
}
