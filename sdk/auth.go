package sdk

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// CapabilityAuthenticator is the manifest capability of the module that
// authenticates callers for the whole installation (the shipped auth module).
const CapabilityAuthenticator = "authenticator"

// Authenticator is what a module with the "authenticator" capability serves
// to the core, registered in Setup with [Runtime.ServeAuthenticator].
//
// The core verifies access tokens (JWTs) itself, with the keys from
// VerificationKeys, so that a request costs no round trip to the module for
// the signature. It asks the module only whether a verified token is still
// valid (CheckToken: logout, a reused refresh token or a disabled user revoke
// it) and who an API key belongs to (AuthenticateAPIKey). It caches both
// answers briefly; [Runtime.InvalidateCredentials] clears the cache at once.
type Authenticator interface {
	// VerificationKeys returns the public keys access tokens are signed with.
	VerificationKeys(ctx context.Context) (AuthKeys, error)
	// CheckToken returns nil if the verified token is still valid, an error
	// from [InvalidCredential] if it is not, and any other error when it
	// cannot tell (the core then answers 503, never lets the request in).
	CheckToken(ctx context.Context, token TokenRef) error
	// AuthenticateAPIKey returns who the key acts as and when it expires (the
	// zero time for never); an error from [InvalidCredential] for an unknown,
	// expired or revoked key.
	AuthenticateAPIKey(ctx context.Context, key string) (Principal, time.Time, error)
}

// AuthKeys is the key material the core verifies access tokens with.
type AuthKeys struct {
	Keys []VerificationKey
	// Issuer and Audience, when set, must match the tokens' "iss" and "aud".
	Issuer   string
	Audience string
}

// VerificationKey is one public key.
type VerificationKey struct {
	// ID is the "kid" header of the tokens this key signs.
	ID string
	// Algorithm is "EdDSA" (PublicKey an ed25519.PublicKey) or "RS256"
	// (PublicKey an *rsa.PublicKey).
	Algorithm string
	PublicKey crypto.PublicKey
}

// TokenRef names a verified access token by its claims.
type TokenRef struct {
	ID      string // jti
	Family  string // fam
	Subject string // sub
}

// Invalidation names credentials whose cached state the core must drop.
type Invalidation struct {
	// Families are token families ("fam" claims).
	Families []string
	// Subjects drops every token family and API key of these users.
	Subjects  []string
	APIKeyIDs []string
}

// CredentialError says a credential is not valid; the core answers 401 with
// Reason as the detail.
type CredentialError struct{ Reason string }

func (e *CredentialError) Error() string { return "invalid credential: " + e.Reason }

// InvalidCredential returns a [CredentialError] with the given reason.
func InvalidCredential(reason string) error { return &CredentialError{Reason: reason} }

// ServeAuthenticator registers the module's authenticator. It must be called
// during Setup, and only by a module whose manifest declares the
// "authenticator" capability (the core ignores it otherwise).
func (rt *Runtime) ServeAuthenticator(a Authenticator) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.setupClosed {
		panic("sdk: ServeAuthenticator called after Setup returned")
	}
	rt.authenticator = a
}

// InvalidateCredentials makes the core drop what it caches about the named
// credentials; it returns once the core's cache is clear, so a revocation
// answered after it holds for the very next request.
func (rt *Runtime) InvalidateCredentials(ctx context.Context, inv Invalidation) error {
	if rt.host == nil {
		return ErrNoHost
	}
	_, err := rt.host.InvalidateCredentials(ctx, &modulev1.InvalidateCredentialsRequest{
		Families: inv.Families, Subjects: inv.Subjects, ApiKeyIds: inv.APIKeyIDs,
	})
	return fromStatus(err)
}

func (rt *Runtime) authenticatorOrNil() Authenticator {
	if rt == nil {
		return nil
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.authenticator
}

// describeAuthenticator converts the authenticator's keys for Describe.
func describeAuthenticator(ctx context.Context, a Authenticator) (*modulev1.Authenticator, error) {
	keys, err := a.VerificationKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("verification keys: %w", err)
	}
	out := &modulev1.Authenticator{Issuer: keys.Issuer, Audience: keys.Audience}
	for _, k := range keys.Keys {
		der, err := x509.MarshalPKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("verification key %q: %w", k.ID, err)
		}
		out.Keys = append(out.Keys, &modulev1.VerificationKey{Kid: k.ID, Alg: k.Algorithm, PublicKey: der})
	}
	return out, nil
}

// Authenticate serves the core's credential questions.
func (s *Server) Authenticate(ctx context.Context, req *modulev1.AuthenticateRequest) (*modulev1.AuthenticateResponse, error) {
	a := s.Runtime().authenticatorOrNil()
	if a == nil {
		return nil, status.Error(codes.Unimplemented, "module serves no authenticator")
	}
	var (
		p       Principal
		expires time.Time
		err     error
	)
	switch c := req.GetCredential().(type) {
	case *modulev1.AuthenticateRequest_ApiKey:
		p, expires, err = a.AuthenticateAPIKey(ctx, c.ApiKey)
	case *modulev1.AuthenticateRequest_Token:
		err = a.CheckToken(ctx, TokenRef{ID: c.Token.GetId(), Family: c.Token.GetFamily(), Subject: c.Token.GetSubject()})
	default:
		return nil, status.Error(codes.InvalidArgument, "no credential")
	}
	var ce *CredentialError
	if errors.As(err, &ce) {
		return &modulev1.AuthenticateResponse{Valid: false, Reason: ce.Reason}, nil
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "authenticate: %v", err)
	}
	resp := &modulev1.AuthenticateResponse{Valid: true}
	if p.Subject != "" {
		resp.Principal = principalToProto(p)
	}
	if !expires.IsZero() {
		resp.ExpiresUnix = expires.Unix()
	}
	return resp, nil
}

// principalToProto converts p for the wire.
func principalToProto(p Principal) *modulev1.Principal {
	return &modulev1.Principal{
		Subject: p.Subject, DisplayName: p.DisplayName, Roles: p.Roles, Scopes: p.Scopes,
		Method: p.Method, Attributes: p.Attributes,
	}
}
