package authapp

import (
	"context"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/gorm"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/sdkdb"
)

// user is an account. Emails and usernames are kept in lower case.
type user struct {
	ID           string  `gorm:"primaryKey;size:36"`
	Email        string  `gorm:"size:254;not null;uniqueIndex"`
	Username     *string `gorm:"size:64;uniqueIndex"`
	DisplayName  string  `gorm:"size:100;not null"`
	PasswordHash string  `gorm:"size:100;not null"`
	Role         string  `gorm:"size:16;not null;index"`
	IsActive     bool    `gorm:"not null"`
	// EmailVerifiedAt is nil until the address is verified.
	EmailVerifiedAt *time.Time
	// FailedLogins counts consecutive failed logins; LockedUntil is set when
	// they reach the limit.
	FailedLogins      int `gorm:"not null"`
	LockedUntil       *time.Time
	LastLoginAt       *time.Time
	PasswordChangedAt time.Time `gorm:"not null"`
	CreatedAt         time.Time `gorm:"not null;autoCreateTime:false"`
	UpdatedAt         time.Time `gorm:"not null;autoUpdateTime:false"`
}

// tokenFamily is one login session: every refresh token rotated from one
// login belongs to it, and access tokens carry its id ("fam").
type tokenFamily struct {
	ID           string    `gorm:"primaryKey;size:36"`
	UserID       string    `gorm:"size:36;not null;index"`
	CreatedAt    time.Time `gorm:"not null;autoCreateTime:false"`
	RevokedAt    *time.Time
	RevokeReason string `gorm:"size:32;not null"`
}

// refreshToken is an opaque refresh token, kept as the SHA-256 of its value.
// UsedAt is set when it is rotated: presenting it again is reuse.
type refreshToken struct {
	ID        string    `gorm:"primaryKey;size:36"`
	FamilyID  string    `gorm:"size:36;not null;index"`
	UserID    string    `gorm:"size:36;not null;index"`
	TokenHash string    `gorm:"size:64;not null;uniqueIndex"`
	ExpiresAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
	CreatedAt time.Time `gorm:"not null;autoCreateTime:false"`
}

// apiKey is an API key, kept as the SHA-256 of its value; Prefix is its
// first characters, shown in listings.
type apiKey struct {
	ID         string   `gorm:"primaryKey;size:36"`
	UserID     string   `gorm:"size:36;not null;index"`
	Name       string   `gorm:"size:100;not null"`
	Prefix     string   `gorm:"size:16;not null"`
	KeyHash    string   `gorm:"size:64;not null;uniqueIndex"`
	Scopes     []string `gorm:"type:text;not null;serializer:json"`
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	CreatedAt  time.Time `gorm:"not null;autoCreateTime:false"`
}

// oneTimeCode is the current email verification or password reset code of
// a user, kept as an HMAC; a new one replaces it.
type oneTimeCode struct {
	UserID    string    `gorm:"primaryKey;size:36"`
	Purpose   string    `gorm:"primaryKey;size:16"`
	CodeHash  string    `gorm:"size:64;not null"`
	ExpiresAt time.Time `gorm:"not null"`
	Attempts  int       `gorm:"not null"`
	SentAt    time.Time `gorm:"not null"`
}

// signingKey is the generated access-token key, kept when no key is
// configured so that restarts and every core sharing the database sign and
// verify with the same one.
type signingKey struct {
	Name          string    `gorm:"primaryKey;size:32"`
	KeyID         string    `gorm:"size:64;not null"`
	Algorithm     string    `gorm:"size:16;not null"`
	PrivateKeyPEM string    `gorm:"type:text;not null"`
	CreatedAt     time.Time `gorm:"not null;autoCreateTime:false"`
}

// migrations are the versioned schema changes, applied in order at start-up
// and recorded in the table "migrations". Never edit one that has shipped:
// append a new one.
var migrations = []*gormigrate.Migration{
	{
		ID: "0001_auth",
		Migrate: func(tx *gorm.DB) error {
			// Copies of the models as this migration created them, so that
			// later changes to the models do not rewrite history.
			type user struct {
				ID                string  `gorm:"primaryKey;size:36"`
				Email             string  `gorm:"size:254;not null;uniqueIndex"`
				Username          *string `gorm:"size:64;uniqueIndex"`
				DisplayName       string  `gorm:"size:100;not null"`
				PasswordHash      string  `gorm:"size:100;not null"`
				Role              string  `gorm:"size:16;not null;index"`
				IsActive          bool    `gorm:"not null"`
				EmailVerifiedAt   *time.Time
				FailedLogins      int `gorm:"not null"`
				LockedUntil       *time.Time
				LastLoginAt       *time.Time
				PasswordChangedAt time.Time `gorm:"not null"`
				CreatedAt         time.Time `gorm:"not null"`
				UpdatedAt         time.Time `gorm:"not null"`
			}
			type tokenFamily struct {
				ID           string    `gorm:"primaryKey;size:36"`
				UserID       string    `gorm:"size:36;not null;index"`
				CreatedAt    time.Time `gorm:"not null"`
				RevokedAt    *time.Time
				RevokeReason string `gorm:"size:32;not null"`
			}
			type refreshToken struct {
				ID        string    `gorm:"primaryKey;size:36"`
				FamilyID  string    `gorm:"size:36;not null;index"`
				UserID    string    `gorm:"size:36;not null;index"`
				TokenHash string    `gorm:"size:64;not null;uniqueIndex"`
				ExpiresAt time.Time `gorm:"not null"`
				UsedAt    *time.Time
				CreatedAt time.Time `gorm:"not null"`
			}
			type apiKey struct {
				ID         string `gorm:"primaryKey;size:36"`
				UserID     string `gorm:"size:36;not null;index"`
				Name       string `gorm:"size:100;not null"`
				Prefix     string `gorm:"size:16;not null"`
				KeyHash    string `gorm:"size:64;not null;uniqueIndex"`
				Scopes     string `gorm:"type:text;not null"`
				ExpiresAt  *time.Time
				RevokedAt  *time.Time
				LastUsedAt *time.Time
				CreatedAt  time.Time `gorm:"not null"`
			}
			type oneTimeCode struct {
				UserID    string    `gorm:"primaryKey;size:36"`
				Purpose   string    `gorm:"primaryKey;size:16"`
				CodeHash  string    `gorm:"size:64;not null"`
				ExpiresAt time.Time `gorm:"not null"`
				Attempts  int       `gorm:"not null"`
				SentAt    time.Time `gorm:"not null"`
			}
			type signingKey struct {
				Name          string    `gorm:"primaryKey;size:32"`
				KeyID         string    `gorm:"size:64;not null"`
				Algorithm     string    `gorm:"size:16;not null"`
				PrivateKeyPEM string    `gorm:"type:text;not null"`
				CreatedAt     time.Time `gorm:"not null"`
			}
			return tx.Migrator().CreateTable(&user{}, &tokenFamily{}, &refreshToken{}, &apiKey{}, &oneTimeCode{}, &signingKey{})
		},
		Rollback: func(tx *gorm.DB) error {
			return tx.Migrator().DropTable("signing_keys", "one_time_codes", "api_keys", "refresh_tokens", "token_families", "users")
		},
	},
}

// store is the module's database namespace.
type store struct {
	db *gorm.DB
}

// openStore opens the namespace the core gave the module and brings its
// schema up to date.
func openStore(ctx context.Context, d sdk.Database) (*store, error) {
	db, err := sdkdb.Open(d)
	if err != nil {
		return nil, err
	}
	if err := sdkdb.Migrate(ctx, db, d, migrations); err != nil {
		sdkdb.Close(db)
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &store{db: db}, nil
}

// Ping checks that the database answers.
func (s *store) Ping(ctx context.Context) error { return sdkdb.Ping(ctx, s.db) }

// Close releases the database connections.
func (s *store) Close() error { return sdkdb.Close(s.db) }
