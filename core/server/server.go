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
	"runtime"
	"time"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/docs"
	"github.com/chacc/chacc/core/events"
	"github.com/chacc/chacc/core/httpapi"
	"github.com/chacc/chacc/core/logging"
	"github.com/chacc/chacc/core/metrics"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/core/openapi"
	"github.com/chacc/chacc/core/ratelimit"
	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/sdk/wire"
)

// NewLogger returns the core's logger: JSON in production, text in
// development; a record logged with a request's context carries its
// request_id.
func NewLogger(cfg config.Config) *slog.Logger {
	return logging.New(os.Stderr, cfg.Mode, cfg.LogLevel)
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
	slog.SetDefault(log) // the store's SQL log and libraries' log lines too
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
		StartTimeout: cfg.StartTimeout, DrainTimeout: cfg.DrainTimeout, Bridge: cfg.Bridge,
		GoMaxProcs: cfg.ModuleGoMaxProcs,
		GOGC:       cfg.ModuleGOGC,
		RestartMax: cfg.RestartMax, RestartWindow: cfg.RestartWindow,
		RestartBackoffMin: cfg.RestartBackoffMin, RestartBackoffMax: cfg.RestartBackoffMax,
		Trust: archive.Trust{Keys: cfg.TrustedKeys, Required: cfg.RequireSigned},
	}, db, log)
	busCtx, stopBus := context.WithCancel(context.Background())
	bus := events.New(busCtx, db, mgr.Deliver, events.Config{PollInterval: cfg.EventPollInterval}, log)
	mgr.SetBus(bus)
	mets := metrics.New(mgr, bus.Lag, log)

	limiter, err := ratelimit.New(ctx, ratelimit.Config{Storage: cfg.RateLimitStorage, Prefix: cfg.RateLimitPrefix})
	if err != nil {
		stopBus()
		return err
	}
	defer limiter.Close()
	authority := wireCredentials(busCtx, cfg, db, mgr, log)

	e := httpapi.New(httpapi.Config{
		Mode: cfg.Mode, MaxBodyBytes: cfg.MaxBodyBytes, MaxUploadBytes: cfg.MaxUploadBytes,
		RateLimit: cfg.RateLimit, Limiter: limiter, TrustedProxies: cfg.TrustedProxies, Auth: authority,
		AdminToken: cfg.AdminToken,
		OpenAPI:    openapi.NewService(mgr, core.Version, log), Docs: docs.Handler(),
		Metrics: mets.Handler(), Observer: mets,
	}, mgr, db, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		stopBus()
		return err
	}
	if cfg.PprofAddr != "" {
		pctx, stopPprof := context.WithCancel(ctx)
		defer stopPprof()
		if err := servePprof(pctx, cfg.PprofAddr, log); err != nil {
			ln.Close()
			stopBus()
			return fmt.Errorf("pprof: %w", err)
		}
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	// The clients' connections read and write without the scheduler's
	// system call hand-off (wire.NonblockingConn).
	go func() { serveErr <- srv.Serve(wire.NonblockingListener(ln)) }()
	abs, _ := filepath.Abs(cfg.DataDir)
	log.Info("chacc core listening", "addr", ln.Addr().String(), "mode", cfg.Mode, "database", db.Driver(), "data_dir", abs, "version", core.Version,
		"rate_limit", cfg.RateLimit.String(), "rate_limit_storage", limiter.Kind(),
		"gomaxprocs", runtime.GOMAXPROCS(0), "module_gomaxprocs", cfg.ModuleGoMaxProcs,
		"gogc", cfg.GOGC, "module_gogc", cfg.ModuleGOGC)

	if err := mgr.Start(ctx, cfg.BootstrapModules); err != nil {
		log.Error("module start-up", "error", err)
	}
	if required, err := authority.Required(ctx); err == nil && !required {
		log.Warn("no authenticator module is enabled: /modules and /audit are open to anyone, and module routes that declare a role are served unauthenticated; install the auth module to enforce credentials")
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
