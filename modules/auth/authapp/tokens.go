package authapp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"gorm.io/gorm/clause"
)

// algEdDSA is the JWS algorithm of access tokens.
const algEdDSA = "EdDSA"

// signingKeyName is the row of the generated key in signing_keys.
const signingKeyName = "jwt"

// signer signs access tokens with an Ed25519 key.
type signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	// kid names the key in the tokens' header: derived from the public key,
	// so every process with the same key agrees on it.
	kid string
}

func newSigner(priv ed25519.PrivateKey) *signer {
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	return &signer{priv: priv, pub: pub, kid: base64.RawURLEncoding.EncodeToString(sum[:12])}
}

// loadSigningKey returns the configured key, or else the one kept in the
// database, generating and storing it on first use. When several processes
// start at once on one database, the first insert wins and every process
// reads that one back.
func loadSigningKey(ctx context.Context, st *store, cfg config, now func() time.Time) (*signer, error) {
	if cfg.PrivateKey != nil {
		return newSigner(cfg.PrivateKey), nil
	}
	db := st.db.WithContext(ctx)
	var row signingKey
	err := db.Where("name = ?", signingKeyName).Limit(1).Find(&row).Error
	if err != nil {
		return nil, err
	}
	if row.Name == "" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		s := newSigner(priv)
		candidate := signingKey{
			Name: signingKeyName, KeyID: s.kid, Algorithm: algEdDSA, CreatedAt: now(),
			PrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		}
		if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&candidate).Error; err != nil {
			return nil, err
		}
		if err := db.Where("name = ?", signingKeyName).Take(&row).Error; err != nil {
			return nil, err
		}
	}
	priv, err := parsePrivateKey([]byte(row.PrivateKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("stored key: %w", err)
	}
	return newSigner(priv), nil
}

// parsePrivateKey reads a PEM "PRIVATE KEY" (PKCS#8) holding an Ed25519 key.
// Errors never quote the key.
func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`want a PEM block "PRIVATE KEY" (PKCS#8)`)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a valid PKCS#8 private key")
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("want an Ed25519 key, not %T", k)
	}
	return priv, nil
}

// accessClaims are the claims of an access token. The core turns them into
// the request's principal: sub, role, scopes, name, and fam, jti and email as
// attributes.
type accessClaims struct {
	Role string `json:"role"`
	// Scopes is empty for login tokens: the role alone governs them.
	Scopes []string `json:"scopes"`
	Family string   `json:"fam"`
	Name   string   `json:"name,omitempty"`
	Email  string   `json:"email,omitempty"`
	jwt.RegisteredClaims
}

// signAccessToken returns a signed access token for u in family fam, and
// when it expires.
func (s *service) signAccessToken(u *user, fam string) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(s.cfg.AccessTTL)
	claims := accessClaims{
		Role: u.Role, Scopes: []string{}, Family: fam, Name: u.DisplayName, Email: u.Email,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        uuid.NewString(),
			Subject:   u.ID,
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.signer.kid
	signed, err := tok.SignedString(s.signer.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, exp, nil
}

// randomToken returns n random bytes, URL-safe base64 without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sha256Hex is how refresh tokens and API keys are kept: they are random
// and long, so a fast hash is enough.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
