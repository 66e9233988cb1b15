package authapp

import (
	"context"
	"strings"
	"time"

	"github.com/chacc/chacc/sdk"
)

// apiKeyTouchInterval is how stale last_used_at may get: a key used often
// is written at most once per interval.
const apiKeyTouchInterval = time.Minute

// authenticator answers the core's credential questions. The core verifies
// access tokens itself with VerificationKeys; it asks here whether a token
// was revoked since, and who an API key acts as.
type authenticator struct {
	svc *service
}

var _ sdk.Authenticator = (*authenticator)(nil)

// VerificationKeys returns the public key access tokens are signed with.
func (a *authenticator) VerificationKeys(context.Context) (sdk.AuthKeys, error) {
	s := a.svc
	return sdk.AuthKeys{
		Keys:   []sdk.VerificationKey{{ID: s.signer.kid, Algorithm: algEdDSA, PublicKey: s.signer.pub}},
		Issuer: s.cfg.Issuer, Audience: s.cfg.Audience,
	}, nil
}

// CheckToken says whether a verified access token still holds: its family
// is not revoked (logout, refresh reuse, password reset, role change) and
// its user exists and is active.
func (a *authenticator) CheckToken(ctx context.Context, ref sdk.TokenRef) error {
	s := a.svc
	if ref.Family == "" || ref.Subject == "" {
		return sdk.InvalidCredential("Token has no session")
	}
	var fam tokenFamily
	if err := s.db.WithContext(ctx).Where("id = ?", ref.Family).Limit(1).Find(&fam).Error; err != nil {
		return err
	}
	if fam.ID == "" || fam.UserID != ref.Subject {
		return sdk.InvalidCredential("Unknown session")
	}
	if fam.RevokedAt != nil {
		return sdk.InvalidCredential("Token has been revoked")
	}
	u, err := s.userByID(ctx, ref.Subject)
	if err != nil {
		return err
	}
	if u == nil {
		return sdk.InvalidCredential("User no longer exists")
	}
	if !u.IsActive {
		return sdk.InvalidCredential("User is disabled")
	}
	return nil
}

// AuthenticateAPIKey returns who key acts as: its owner, with the owner's
// current role and the key's scopes.
func (a *authenticator) AuthenticateAPIKey(ctx context.Context, key string) (sdk.Principal, time.Time, error) {
	s := a.svc
	if !strings.HasPrefix(key, apiKeyPrefix) || len(key) > 128 {
		return sdk.Principal{}, time.Time{}, sdk.InvalidCredential("Invalid API key")
	}
	db := s.db.WithContext(ctx)
	var k apiKey
	if err := db.Where("key_hash = ?", sha256Hex(key)).Limit(1).Find(&k).Error; err != nil {
		return sdk.Principal{}, time.Time{}, err
	}
	now := s.now()
	switch {
	case k.ID == "":
		return sdk.Principal{}, time.Time{}, sdk.InvalidCredential("Invalid API key")
	case k.RevokedAt != nil:
		return sdk.Principal{}, time.Time{}, sdk.InvalidCredential("API key has been revoked")
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return sdk.Principal{}, time.Time{}, sdk.InvalidCredential("API key has expired")
	}
	u, err := s.userByID(ctx, k.UserID)
	if err != nil {
		return sdk.Principal{}, time.Time{}, err
	}
	if u == nil || !u.IsActive {
		return sdk.Principal{}, time.Time{}, sdk.InvalidCredential("API key owner is disabled")
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= apiKeyTouchInterval {
		// Best effort: a failed write must not refuse a valid key.
		if err := db.Model(&apiKey{}).Where("id = ?", k.ID).Update("last_used_at", now).Error; err != nil {
			s.log.WarnContext(ctx, "recording an API key's use failed", "api_key_id", k.ID, "error", err.Error())
		}
	}
	var expires time.Time
	if k.ExpiresAt != nil {
		expires = *k.ExpiresAt
	}
	return sdk.Principal{
		Subject: u.ID, DisplayName: u.DisplayName, Roles: []string{u.Role}, Scopes: k.Scopes,
		Method: "api_key", Attributes: map[string]string{"api_key_id": k.ID},
	}, expires, nil
}
