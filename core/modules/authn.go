package modules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chacc/chacc/core/auth"
	"github.com/chacc/chacc/core/store"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// setRecord sets the module's record and manifest. Callers hold mod.mu.
func (mod *module) setRecord(rec store.Module, man sdk.Manifest) {
	mod.rec, mod.manifest = rec, man
	mod.authenticator.Store(man.HasCapability(sdk.CapabilityAuthenticator))
}

// authnState is the enabled authenticator module, recomputed with the route
// table.
type authnState struct {
	mod *module // nil: none enabled
}

// Authenticator reports the enabled module with the "authenticator"
// capability and its running instance, for core/auth. known is false until
// Start has loaded the desired state. When several are enabled, the first by
// name is used (and a warning logged when the table is rebuilt).
func (m *Manager) Authenticator() (name string, backend auth.Backend, enabled, known bool) {
	st := m.authn.Load()
	if st == nil {
		return "", nil, false, false
	}
	if st.mod == nil {
		return "", nil, false, true
	}
	if inst := st.mod.inst.Load(); inst != nil {
		return st.mod.name, inst, true, true
	}
	return st.mod.name, nil, true, true
}

// Loaded is closed once Start has read the desired state (and so knows the
// authenticator).
func (m *Manager) Loaded() <-chan struct{} { return m.loadedCh }

// updateAuthn recomputes the authenticator after the route table changed.
// Called from rebuildRoutes with the mounted modules.
func (m *Manager) updateAuthn(mounted []*module) {
	if !m.loaded.Load() {
		return
	}
	var found []*module
	for _, mod := range mounted {
		if mod.authenticator.Load() && !slices.Contains(found, mod) {
			found = append(found, mod)
		}
	}
	slices.SortFunc(found, func(a, b *module) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	st := &authnState{}
	if len(found) > 0 {
		st.mod = found[0]
	}
	if prev := m.authn.Swap(st); prev == nil || prev.mod != st.mod {
		switch {
		case st.mod != nil:
			m.log.Info("authentication enforced", "authenticator", st.mod.name)
		case prev != nil:
			m.log.Warn("no authenticator module enabled: core routes are open to anyone")
		}
	}
	if len(found) > 1 {
		m.log.Warn("several authenticator modules are enabled; only the first is used", "used", found[0].name)
	}
}

// SetCredentials connects the core's credential handling: invalidate is what
// Host.InvalidateCredentials runs, authorize checks module-to-module calls
// (Host.Call) against the target route's requirement.
func (m *Manager) SetCredentials(invalidate func(ctx context.Context, families, subjects, apiKeyIDs []string) error, authorize func(p *modulev1.Principal, route *modulev1.Route) error) {
	m.invalidate, m.authorizeCall = invalidate, authorize
}

// InvalidateCredentials drops the core's cached state of the named
// credentials. Only an authenticator module may call it.
func (h *hostServer) InvalidateCredentials(ctx context.Context, req *modulev1.InvalidateCredentialsRequest) (*modulev1.InvalidateCredentialsResponse, error) {
	if !h.manifest.HasCapability(sdk.CapabilityAuthenticator) {
		return nil, status.Errorf(codes.PermissionDenied, "module %q may not invalidate credentials: its manifest does not declare the %q capability", h.name, sdk.CapabilityAuthenticator)
	}
	if name, _, enabled, _ := h.m.Authenticator(); !enabled || name != h.name {
		return nil, status.Errorf(codes.PermissionDenied, "module %q is not the authenticator in use", h.name)
	}
	if h.m.invalidate != nil {
		if err := h.m.invalidate(ctx, req.GetFamilies(), req.GetSubjects(), req.GetApiKeyIds()); err != nil {
			return nil, status.Errorf(codes.Unavailable, "invalidate: %v", err)
		}
	}
	return &modulev1.InvalidateCredentialsResponse{}, nil
}

// callEntry is a request being served on behalf of a principal.
type callEntry struct {
	module    string
	principal *modulev1.Principal
}

// RegisterCall records that module is serving a request for principal and
// returns the token to put in the request head; done forgets it. A
// Host.Call from that module carrying the token acts for principal.
func (m *Manager) RegisterCall(module string, principal *modulev1.Principal) (token string, done func()) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	m.calls.Store(token, callEntry{module: module, principal: principal})
	return token, func() { m.calls.Delete(token) }
}

// callPrincipal returns the principal a Host.Call from module acts for: the
// one registered under token for that module, else nil (anonymous).
func (m *Manager) callPrincipal(module, token string) *modulev1.Principal {
	if token == "" {
		return nil
	}
	v, ok := m.calls.Load(token)
	if !ok {
		return nil
	}
	e := v.(callEntry)
	if e.module != module {
		return nil // another module's token: worth nothing here
	}
	return e.principal
}
