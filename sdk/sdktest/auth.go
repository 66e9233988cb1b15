package sdktest

import (
	"context"
	"slices"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
)

// AuthResult is an authenticator's answer, as the core receives it.
type AuthResult struct {
	Valid bool
	// Reason says why the credential is not valid.
	Reason string
	// Principal is who an API key acts as (nil for tokens).
	Principal *sdk.Principal
	// ExpiresUnix is when an API key expires, 0 for never.
	ExpiresUnix int64
}

// AuthenticateAPIKey asks the module's authenticator about an API key, as the
// core does when a request carries X-API-Key. An error means the module could
// not answer (the core would give 503).
func (h *Harness) AuthenticateAPIKey(ctx context.Context, key string) (AuthResult, error) {
	return h.authenticate(ctx, &modulev1.AuthenticateRequest{Credential: &modulev1.AuthenticateRequest_ApiKey{ApiKey: key}})
}

// CheckToken asks the module's authenticator whether a verified access token
// is still valid, as the core does before it trusts the token's claims.
func (h *Harness) CheckToken(ctx context.Context, ref sdk.TokenRef) (AuthResult, error) {
	return h.authenticate(ctx, &modulev1.AuthenticateRequest{Credential: &modulev1.AuthenticateRequest_Token{
		Token: &modulev1.TokenRef{Id: ref.ID, Family: ref.Family, Subject: ref.Subject},
	}})
}

func (h *Harness) authenticate(ctx context.Context, req *modulev1.AuthenticateRequest) (AuthResult, error) {
	resp, err := h.module.Authenticate(ctx, req)
	if err != nil {
		return AuthResult{}, err
	}
	r := AuthResult{Valid: resp.GetValid(), Reason: resp.GetReason(), ExpiresUnix: resp.GetExpiresUnix()}
	if p := resp.GetPrincipal(); p != nil {
		r.Principal = &sdk.Principal{
			Subject: p.GetSubject(), DisplayName: p.GetDisplayName(), Roles: p.GetRoles(),
			Scopes: p.GetScopes(), Method: p.GetMethod(), Attributes: p.GetAttributes(),
		}
	}
	return r, nil
}

// Invalidations returns every InvalidateCredentials call the module made, in
// order.
func (h *Harness) Invalidations() []sdk.Invalidation { return h.host.invalidationList() }

// InvalidateCredentials records the call. Like the core, it accepts it only
// from a module with the "authenticator" capability.
func (f *host) InvalidateCredentials(_ context.Context, req *modulev1.InvalidateCredentialsRequest) (*modulev1.InvalidateCredentialsResponse, error) {
	if !slices.Contains(f.manifest.Capabilities, sdk.CapabilityAuthenticator) {
		return nil, errNotAuthenticator(f.manifest.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invalidations = append(f.invalidations, sdk.Invalidation{
		Families: req.GetFamilies(), Subjects: req.GetSubjects(), APIKeyIDs: req.GetApiKeyIds(),
	})
	return &modulev1.InvalidateCredentialsResponse{}, nil
}

func (f *host) invalidationList() []sdk.Invalidation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.invalidations)
}
