// Package server wires the core together and runs it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/events"
	"github.com/chacc/chacc/core/httpapi"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/core/store"
)

// NewLogger returns the core's logger: JSON in production, text in
// development.
func NewLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Mode == "production" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// OpenStore opens and migrates the core's database.
func OpenStore(ctx context.Context, cfg config.Config) (*store.DB, error) {
	db, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Run serves until ctx is done, then stops gracefully: no new requests,
// in-flight ones finish, modules drain and stop.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	for _, dir := range []string{cfg.InstalledDir, cfg.LoadedDir, cfg.DataDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer db.Close()

	mgr := modules.New(modules.Config{
		InstalledDir: cfg.InstalledDir, LoadedDir: cfg.LoadedDir, DataDir: cfg.DataDir,
		Mode: cfg.Mode, CoreVersion: core.Version,
		Limits:       archive.Limits{MaxUnpackedBytes: cfg.MaxUnpackedBytes},
		StartTimeout: cfg.StartTimeout, DrainTimeout: cfg.DrainTimeout,
		RestartMax: cfg.RestartMax, RestartWindow: cfg.RestartWindow,
		RestartBackoffMin: cfg.RestartBackoffMin, RestartBackoffMax: cfg.RestartBackoffMax,
	}, db, log)
	busCtx, stopBus := context.WithCancel(context.Background())
	bus := events.New(busCtx, db, mgr.Deliver, events.Config{PollInterval: cfg.EventPollInterval}, log)
	mgr.SetBus(bus)

	e := httpapi.New(httpapi.Config{Mode: cfg.Mode, MaxBodyBytes: cfg.MaxBodyBytes, MaxUploadBytes: cfg.MaxUploadBytes}, mgr, db, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		stopBus()
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	abs, _ := filepath.Abs(cfg.DataDir)
	log.Info("chacc core listening", "addr", ln.Addr().String(), "mode", cfg.Mode, "database", db.Driver(), "data_dir", abs, "version", core.Version)

	if err := mgr.Start(ctx, cfg.BootstrapModules); err != nil {
		log.Error("module start-up", "error", err)
	}
	recCtx, stopReconciler := context.WithCancel(ctx)
	defer stopReconciler()
	go mgr.RunReconciler(recCtx, cfg.ReconcileInterval)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopBus()
		mgr.Close(context.Background())
		return err
	}
	log.Info("shutting down")
	stopReconciler()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "error", err)
	}
	stopBus()
	bus.Wait()
	mgr.Close(sctx)
	log.Info("stopped")
	return nil
}
