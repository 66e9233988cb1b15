package store

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// modulesChannel is the Postgres channel on which lifecycle changes are
// announced to every core on the database.
const modulesChannel = "chacc_modules"

// NotifyModules announces, inside tx, that the desired state of modules
// changed: other cores on the same Postgres hear it when tx commits. A no-op
// on SQLite, which has one core.
func (db *DB) NotifyModules(tx *gorm.DB) error {
	if db.driver != DriverPostgres {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, '')", modulesChannel).Error
}

// CredentialsChannel is the Postgres channel on which a core tells the
// others that credentials were revoked, so they drop their caches too.
const CredentialsChannel = "chacc_credentials"

// Notify sends payload on channel to every core on the database (itself
// included). A no-op on SQLite, which has one core.
func (db *DB) Notify(ctx context.Context, channel, payload string) error {
	if db.driver != DriverPostgres {
		return nil
	}
	return db.WithContext(ctx).Exec("SELECT pg_notify(?, ?)", channel, payload).Error
}

// ListenModules calls changed once listening has begun (so the caller can
// catch up on what was committed before), then for every announcement of
// NotifyModules (its own core's included), until ctx is done or the
// connection fails. It holds a connection of its own meanwhile. On SQLite it
// returns nil at once.
func (db *DB) ListenModules(ctx context.Context, changed func()) error {
	return db.Listen(ctx, modulesChannel, changed, func(string) { changed() })
}

// Listen calls listening once it listens on channel, then notified with the
// payload of every notification, until ctx is done or the connection fails.
// It holds a connection of its own meanwhile. On SQLite it returns nil at
// once.
func (db *DB) Listen(ctx context.Context, channel string, listening func(), notified func(payload string)) error {
	if db.driver != DriverPostgres {
		return nil
	}
	conn, err := db.sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var listenErr error
	// Raw's ErrBadConn makes database/sql close the connection instead of
	// pooling it: a connection still LISTENing would pile up notifications.
	_ = conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			listenErr = fmt.Errorf("store: listen needs a pgx connection, not %T", driverConn)
			return driver.ErrBadConn
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			listenErr = err
			return driver.ErrBadConn
		}
		listening()
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					listenErr = err
				}
				return driver.ErrBadConn
			}
			notified(n.Payload)
		}
	})
	return listenErr
}
