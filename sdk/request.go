package sdk

import (
	"context"
	"slices"

	"github.com/chacc/chacc/sdk/wire"
)

// Roles in increasing order of privilege. A caller with a role has every
// lower role too.
var Roles = []string{"viewer", "engineer", "operator", "admin"}

// RoleAtLeast reports whether role is min or above in [Roles]. An unknown role
// satisfies nothing; an empty min is satisfied by anyone.
func RoleAtLeast(role, min string) bool {
	if min == "" {
		return true
	}
	have, need := slices.Index(Roles, role), slices.Index(Roles, min)
	return have >= 0 && need >= 0 && have >= need
}

// Principal is the authenticated caller of a request, as established by the
// core. Modules never parse credentials themselves.
type Principal struct {
	// Subject is the user id, or the API key id.
	Subject     string
	DisplayName string
	Roles       []string
	Scopes      []string
	// Method is "jwt" or "api_key".
	Method     string
	Attributes map[string]string
}

// HasRole reports whether any of the principal's roles is min or above.
func (p Principal) HasRole(min string) bool {
	for _, r := range p.Roles {
		if RoleAtLeast(r, min) {
			return true
		}
	}
	return false
}

// HasScope reports whether the principal carries scope s.
func (p Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }

// PrincipalFrom returns the caller of the request whose context is ctx; ok is
// false for an anonymous request.
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	pp := wire.HeadFrom(ctx).GetPrincipal()
	if pp == nil || pp.GetSubject() == "" {
		return Principal{}, false
	}
	return Principal{
		Subject:     pp.GetSubject(),
		DisplayName: pp.GetDisplayName(),
		Roles:       pp.GetRoles(),
		Scopes:      pp.GetScopes(),
		Method:      pp.GetMethod(),
		Attributes:  pp.GetAttributes(),
	}, true
}

// RequestInfo is what the core knows about a request besides its HTTP form.
type RequestInfo struct {
	// ID is the request id (X-Request-ID), CorrelationID the correlation id.
	ID            string
	CorrelationID string
	// ClientIP is the client's address as the core determined it.
	ClientIP string
	// Route is the matched declared route pattern, empty if none matched.
	Route      string
	PathParams map[string]string
	// CallerModule is set when another module made the request (Runtime.Call).
	CallerModule string
}

// RequestFrom returns the request information carried by ctx; the zero value
// outside a request.
func RequestFrom(ctx context.Context) RequestInfo {
	h := wire.HeadFrom(ctx)
	if h == nil {
		return RequestInfo{}
	}
	return RequestInfo{
		ID:            h.GetRequestId(),
		CorrelationID: h.GetCorrelationId(),
		ClientIP:      h.GetClientIp(),
		Route:         h.GetRoute(),
		PathParams:    h.GetPathParams(),
		CallerModule:  h.GetCallerModule(),
	}
}
