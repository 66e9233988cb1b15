package authapp

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm/clause"
)

// devAdminEmail is the first admin's email when development mode generates
// one.
const devAdminEmail = "admin@localhost"

// bootstrapAdmin makes the first admin when there is none: from
// AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD; else, in development mode only,
// admin@localhost with a random password logged once; else (production) no
// one, with a warning. There is never a fixed default password.
//
// Two processes starting at once on one database make one admin: the
// insert does nothing when the email exists, and only the process whose
// insert made the row logs the password.
func (s *service) bootstrapAdmin(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	var admins int64
	if err := db.Model(&user{}).Where("role = ?", roleAdmin).Count(&admins).Error; err != nil {
		return err
	}
	if admins > 0 {
		return nil
	}
	email, password, generated := s.cfg.AdminEmail, s.cfg.AdminPassword, false
	switch {
	case email != "":
		email, _ = normalizeEmail(email) // checked by loadConfig
	case s.rt.Mode() == "development":
		email, password, generated = devAdminEmail, generatePassword(), true
	default:
		s.log.WarnContext(ctx, "no admin exists and AUTH_ADMIN_EMAIL/AUTH_ADMIN_PASSWORD are not set: no admin was created; set them and restart the module")
		return nil
	}
	hash, err := hashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	now := s.now()
	u := &user{
		ID: uuid.Must(uuid.NewV7()).String(), Email: email, DisplayName: "Administrator", PasswordHash: hash,
		Role: roleAdmin, IsActive: true, EmailVerifiedAt: &now, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	res := db.Clauses(clause.OnConflict{DoNothing: true}).Create(u)
	if res.Error != nil {
		return fmt.Errorf("create admin: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		existing, err := s.userByEmail(ctx, email)
		if err != nil {
			return err
		}
		if existing != nil && existing.Role != roleAdmin {
			// Promoting it would hand admin to whoever registered the address
			// first, with their password.
			s.log.WarnContext(ctx, "the first admin's email belongs to an existing non-admin account, which is not promoted: no admin was created", "email", email)
		}
		return nil // else another process made it just now
	}
	if generated {
		s.log.WarnContext(ctx, fmt.Sprintf("DEVELOPMENT MODE: created the first admin %s with the generated password %s (shown only this once; set AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD to choose them)", email, password),
			"email", email, "password", password)
	} else {
		s.log.InfoContext(ctx, "created the first admin from AUTH_ADMIN_EMAIL", "email", email)
	}
	return nil
}
