package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/chacc/chacc/core/auth"
	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/core/store"
	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// maxNotifyPayload stays under Postgres's 8000-byte NOTIFY limit.
const maxNotifyPayload = 7900

// invalidation is what one core tells the others when credentials are
// revoked.
type invalidation struct {
	Origin    string   `json:"o"`
	All       bool     `json:"all,omitempty"`
	Families  []string `json:"f,omitempty"`
	Subjects  []string `json:"s,omitempty"`
	APIKeyIDs []string `json:"k,omitempty"`
}

// wireCredentials makes the Authority that authenticates requests and
// connects it to the manager: Host.InvalidateCredentials clears this core's
// cache and, on Postgres, every other core's (NOTIFY); Host.Call is held to
// the target route's requirement. It runs the listener until ctx is done.
func wireCredentials(ctx context.Context, cfg config.Config, db *store.DB, mgr *modules.Manager, log *slog.Logger) *auth.Authority {
	a := auth.New(mgr, auth.Config{CacheTTL: cfg.AuthCacheTTL})
	origin := newOrigin()
	invalidate := func(ctx context.Context, families, subjects, apiKeyIDs []string) error {
		a.Invalidate(families, subjects, apiKeyIDs)
		msg := invalidation{Origin: origin, Families: families, Subjects: subjects, APIKeyIDs: apiKeyIDs}
		payload, _ := json.Marshal(msg)
		if len(payload) > maxNotifyPayload {
			payload, _ = json.Marshal(invalidation{Origin: origin, All: true})
		}
		if err := db.Notify(ctx, store.CredentialsChannel, string(payload)); err != nil {
			// This core's cache is clear; the others' entries expire within
			// the cache TTL.
			log.Warn("could not tell other cores about revoked credentials", "error", err, "cache_ttl", cfg.AuthCacheTTL)
		}
		return nil
	}
	authorize := func(p *modulev1.Principal, route *modulev1.Route) error {
		if required, err := a.Required(context.Background()); err != nil || !required {
			return err
		}
		return auth.Authorize(p, route.GetMinRole(), route.GetScopes())
	}
	mgr.SetCredentials(invalidate, authorize)

	if db.Driver() == store.DriverPostgres {
		go func() {
			for ctx.Err() == nil {
				err := db.Listen(ctx, store.CredentialsChannel, a.InvalidateAll, func(payload string) {
					var msg invalidation
					if err := json.Unmarshal([]byte(payload), &msg); err != nil || msg.All {
						a.InvalidateAll()
						return
					}
					if msg.Origin != origin {
						a.Invalidate(msg.Families, msg.Subjects, msg.APIKeyIDs)
					}
				})
				if err != nil && ctx.Err() == nil {
					log.Warn("listening for revoked credentials failed; retrying", "error", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	return a
}

func newOrigin() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
