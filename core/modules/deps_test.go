package modules

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/sdk"
)

func rec(name, version string, enabled bool, deps map[string]string, prefixes ...string) store.Module {
	man := sdk.Manifest{Name: name, Version: version, Dependencies: deps}
	if len(prefixes) > 0 {
		man.BasePathPrefix, man.ExtraPrefixes = prefixes[0], prefixes[1:]
	}
	b, _ := json.Marshal(man)
	return store.Module{Name: name, Version: version, Enabled: enabled, ManifestJSON: string(b)}
}

func TestCheckDependencies(t *testing.T) {
	recs := []store.Module{rec("auth", "1.2.0", true, nil), rec("sla", "2.0.0", false, nil)}
	tests := []struct {
		name string
		deps map[string]string
		msg  string
	}{
		{"none", nil, ""},
		{"met", map[string]string{"auth": "^1.0.0"}, ""},
		{"missing", map[string]string{"billing": ">=1"}, "'billing' (>=1) is not installed"},
		{"disabled", map[string]string{"sla": "^2"}, "'sla' (^2) is disabled"},
		{"wrong version", map[string]string{"auth": "^2.0.0"}, "'auth' is 1.2.0, which is not ^2.0.0"},
		{"several named", map[string]string{"auth": "^2.0.0", "billing": "*"}, "'auth' is 1.2.0, which is not ^2.0.0; 'billing' (*) is not installed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDependencies(sdk.Manifest{Name: "x", Dependencies: tc.deps}, recs)
			if tc.msg == "" {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, core.EUNPROCESSABLE, core.ErrorCode(err))
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestCheckConflictsAndDependents(t *testing.T) {
	recs := []store.Module{
		rec("payments", "1.0.0", true, nil, "/api/v1/payments", "/api/v1/wallets"),
		rec("webhooks", "1.0.0", true, map[string]string{"payments": "^1.0.0"}),
		rec("my-mod", "1.0.0", true, nil, "/mine"),
	}
	assert.NoError(t, checkConflicts(sdk.Manifest{Name: "payments", Version: "1.1.0", BasePathPrefix: "/api/v1/payments"}, recs), "own prefix on upgrade")
	assert.ErrorContains(t, checkConflicts(sdk.Manifest{Name: "x", BasePathPrefix: "/api/v1/wallets/x"}, recs), "already used by module 'payments'")
	assert.ErrorContains(t, checkConflicts(sdk.Manifest{Name: "y", BasePathPrefix: "/api"}, recs), "already used by module 'payments'")
	assert.NoError(t, checkConflicts(sdk.Manifest{Name: "z", BasePathPrefix: "/api/v1/pay"}, recs), "a sibling, not a parent")
	assert.ErrorContains(t, checkConflicts(sdk.Manifest{Name: "my_mod", BasePathPrefix: "/other"}, recs), "clashes")

	assert.NoError(t, checkDependents("payments", "1.9.0", recs))
	assert.ErrorContains(t, checkDependents("payments", "2.0.0", recs), "Module 'webhooks' requires 'payments' ^1.0.0")
	assert.Equal(t, []string{"webhooks"}, enabledDependents("payments", recs))
	assert.Empty(t, enabledDependents("webhooks", recs))
}

func TestStartWaves(t *testing.T) {
	recs := []store.Module{
		rec("webhooks", "1.0.0", true, map[string]string{"payments": "*"}),
		rec("payments", "1.0.0", true, map[string]string{"sla": "*", "auth": "*"}),
		rec("sla", "1.0.0", true, map[string]string{"auth": "*"}),
		rec("auth", "1.0.0", true, nil),
		rec("hello", "1.0.0", true, nil),
		rec("a", "1.0.0", true, map[string]string{"b": "*"}),
		rec("b", "1.0.0", true, map[string]string{"a": "*"}),
	}
	var names [][]string
	for _, w := range startWaves(recs) {
		var ns []string
		for _, r := range w {
			ns = append(ns, r.Name)
		}
		names = append(names, ns)
	}
	assert.Equal(t, [][]string{{"auth", "hello"}, {"sla"}, {"payments"}, {"webhooks"}, {"a", "b"}}, names)
}
