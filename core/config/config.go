// Package config reads the core's settings from the environment. Every
// setting is documented here and in the README's settings table.
package config

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/ratelimit"
)

// Config is the core's configuration.
type Config struct {
	// Addr is the HTTP listen address. CHACC_ADDR. Default: ":8085".
	Addr string
	// PprofAddr, when set, is a second listen address (host:port) serving
	// Go's runtime profiles (net/http/pprof) under /debug/pprof/, to profile
	// the core under load. They show the core's internals and have no
	// authentication: keep the address on loopback or a private network.
	// CHACC_PPROF_ADDR. Default: empty, not served.
	PprofAddr string
	// Mode is "development" or "production". CHACC_MODE. Default: development.
	Mode string
	// DataDir holds the SQLite databases and module data. CHACC_DATA_DIR.
	// Default: ".data".
	DataDir string
	// DatabaseURL selects Postgres (postgres://...); empty means embedded
	// SQLite under DataDir. DATABASE_URL.
	DatabaseURL string
	// InstalledDir keeps uploaded archives. CHACC_MODULES_INSTALLED_DIR.
	// Default: ".modules_installed".
	InstalledDir string
	// LoadedDir keeps extracted archives. CHACC_MODULES_LOADED_DIR.
	// Default: ".modules_loaded".
	LoadedDir string
	// BootstrapModules are archive paths (or globs) installed at start-up when
	// not installed yet or older. CHACC_BOOTSTRAP_MODULES, comma-separated.
	BootstrapModules []string
	// MaxBodyBytes caps request bodies (413 above). CHACC_MAX_BODY_BYTES.
	// Default: 10 MiB.
	MaxBodyBytes int64
	// MaxUploadBytes caps an uploaded archive. CHACC_MAX_UPLOAD_BYTES.
	// Default: 256 MiB.
	MaxUploadBytes int64
	// MaxUnpackedBytes caps an archive's decompressed size.
	// CHACC_MAX_UNPACKED_BYTES. Default: 1 GiB.
	MaxUnpackedBytes int64
	// StartTimeout bounds a module's start (process, Configure, Describe,
	// Health). CHACC_MODULE_START_TIMEOUT. Default: 15s.
	StartTimeout time.Duration
	// DrainTimeout bounds how long a replaced or stopped module may finish its
	// in-flight requests. CHACC_DRAIN_TIMEOUT. Default: 30s.
	DrainTimeout time.Duration
	// Bridge is how requests reach a module process: "mux" (its direct
	// socket, every exchange over one multiplexed connection), "conns" (its
	// direct socket, one exchange at a time per connection) or "grpc"
	// (HTTP.Handle streams over the go-plugin connection). The last two are
	// kept to compare with (make bench). CHACC_BRIDGE. Default: mux.
	Bridge string
	// GoMaxProcs is the number of CPUs the core's Go runtime runs goroutines
	// on at once (runtime.GOMAXPROCS); 0 leaves Go's default. The core and
	// every module are processes of their own, and each Go runtime assumes by
	// default that it has every CPU: on a machine they share, they then wake
	// each other's idle threads for every request (BENCHMARKS.md measures the
	// cost). CHACC_GOMAXPROCS. Default: half of the CPUs available to the core,
	// rounded up; 0 when Go's own GOMAXPROCS variable is set, which then
	// governs the core.
	GoMaxProcs int
	// ModuleGoMaxProcs is the GOMAXPROCS of every module process; 0 leaves
	// Go's default (every CPU). CHACC_MODULE_GOMAXPROCS. Default: half of the
	// CPUs available to the core, rounded up.
	ModuleGoMaxProcs int
	// GOGC is the core's garbage collection target percentage
	// (debug.SetGCPercent): the heap may grow by this much of what is live
	// before a collection. Go's default, 100, makes a process whose live
	// heap is a few MiB collect every few MiB allocated, and the core and
	// each module are such processes: under load that was 15% of a
	// module's CPU. 400 collects a quarter as often, for a heap of up to
	// five times what is live (a few MiB to some tens more per process;
	// BENCHMARKS.md measures both). 0 leaves Go's default. CHACC_GOGC.
	// Default: 400; 0 when Go's own GOGC variable is set, which then
	// governs the core.
	GOGC int
	// ModuleGOGC is the GOGC of every module process; 0 leaves Go's
	// default (100). CHACC_MODULE_GOGC. Default: 400.
	ModuleGOGC int
	// RestartMax crashes within RestartWindow mark a module crashed.
	// CHACC_RESTART_MAX. Default: 5.
	RestartMax int
	// RestartWindow, see RestartMax. CHACC_RESTART_WINDOW. Default: 1m.
	RestartWindow time.Duration
	// RestartBackoffMin is the wait before the second restart in a row (the
	// first is immediate); it doubles up to RestartBackoffMax.
	// CHACC_RESTART_BACKOFF_MIN. Default: 100ms.
	RestartBackoffMin time.Duration
	// RestartBackoffMax, see RestartBackoffMin. CHACC_RESTART_BACKOFF_MAX.
	// Default: 30s.
	RestartBackoffMax time.Duration
	// EventPollInterval is how often event dispatchers look for events
	// published by other core instances. CHACC_EVENT_POLL_INTERVAL.
	// Default: 1s.
	EventPollInterval time.Duration
	// ReconcileInterval is how often the core re-reads the desired state to
	// follow changes made by other core instances on the same database.
	// CHACC_RECONCILE_INTERVAL. Default: 5s.
	ReconcileInterval time.Duration
	// ShutdownTimeout bounds a graceful stop. CHACC_SHUTDOWN_TIMEOUT.
	// Default: 20s.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error. CHACC_LOG_LEVEL. Default: info.
	LogLevel string
	// RateLimit is the default limit per client IP on every route that
	// declares none of its own (health probes and /metrics are exempt).
	// CHACC_RATE_LIMIT, "<count>/<period>" or "off". Default: 100/1m.
	RateLimit ratelimit.Rate
	// RateLimitStorage keeps the counts: "memory", or a redis:// URL so that
	// several cores share one count. RATE_LIMIT_STORAGE. Default: memory.
	RateLimitStorage string
	// RateLimitPrefix starts every rate-limit key in Redis.
	// CHACC_RATE_LIMIT_PREFIX. Default: "chacc".
	RateLimitPrefix string
	// TrustedProxies are the addresses (IPs or CIDRs) of reverse proxies whose
	// X-Forwarded-For names the client. Empty: the client is the peer
	// address and X-Forwarded-For is ignored. CHACC_TRUSTED_PROXIES,
	// comma-separated.
	TrustedProxies []*net.IPNet
	// AuthCacheTTL bounds how long the core reuses the authenticator module's
	// answer about a token family or an API key; revocations clear it at
	// once. CHACC_AUTH_CACHE_TTL. Default: 30s.
	AuthCacheTTL time.Duration
	// AdminToken is a break-glass bearer token that acts as an admin on the
	// core's own routes (/modules/*, /audit) only, so that an operator can
	// still re-enable or replace the auth module when it is down. At least
	// 32 characters; empty disables it. CHACC_ADMIN_TOKEN.
	AdminToken string
	// TrustedKeys are the Ed25519 public keys whose module signatures are
	// trusted. CHACC_TRUSTED_KEYS: comma-separated items, each a key
	// ("ed25519:<base64>", as `chacc module keygen` writes it) or the path of
	// a file holding keys, one per line (PEM "PUBLIC KEY" blocks too; "#"
	// starts a comment line). Default: none.
	TrustedKeys []ed25519.PublicKey
	// RequireSigned refuses archives that are unsigned (403) or signed by a
	// key not in TrustedKeys (403). A broken signature is refused (400)
	// either way. CHACC_REQUIRE_SIGNED, true or false; true needs
	// TrustedKeys. Default: false.
	RequireSigned bool
}

// Load reads the configuration from the environment and checks it.
func Load() (Config, error) { return load(os.Getenv) }

// DefaultGOGC is the default GOGC of the core and of every module.
const DefaultGOGC = 400

// HalfCPUs is the default GOMAXPROCS of the core and of every module: half
// the CPUs available to this process, rounded up.
func HalfCPUs() int { return (runtime.GOMAXPROCS(0) + 1) / 2 }

func load(getenv func(string) string) (Config, error) {
	half := HalfCPUs()
	c := Config{
		Addr:              or(getenv("CHACC_ADDR"), ":8085"),
		Mode:              or(getenv("CHACC_MODE"), "development"),
		DataDir:           or(getenv("CHACC_DATA_DIR"), ".data"),
		DatabaseURL:       getenv("DATABASE_URL"),
		InstalledDir:      or(getenv("CHACC_MODULES_INSTALLED_DIR"), ".modules_installed"),
		LoadedDir:         or(getenv("CHACC_MODULES_LOADED_DIR"), ".modules_loaded"),
		BootstrapModules:  splitList(getenv("CHACC_BOOTSTRAP_MODULES")),
		LogLevel:          or(getenv("CHACC_LOG_LEVEL"), "info"),
		MaxBodyBytes:      10 << 20,
		MaxUploadBytes:    256 << 20,
		MaxUnpackedBytes:  1 << 30,
		StartTimeout:      15 * time.Second,
		DrainTimeout:      30 * time.Second,
		Bridge:            or(getenv("CHACC_BRIDGE"), "mux"),
		GoMaxProcs:        half,
		ModuleGoMaxProcs:  half,
		GOGC:              DefaultGOGC,
		ModuleGOGC:        DefaultGOGC,
		RestartMax:        5,
		RestartWindow:     time.Minute,
		RestartBackoffMin: 100 * time.Millisecond,
		RestartBackoffMax: 30 * time.Second,
		EventPollInterval: time.Second,
		ReconcileInterval: 5 * time.Second,
		ShutdownTimeout:   20 * time.Second,
		RateLimit:         ratelimit.Rate{Limit: 100, Period: time.Minute},
		RateLimitStorage:  or(getenv("RATE_LIMIT_STORAGE"), "memory"),
		RateLimitPrefix:   or(getenv("CHACC_RATE_LIMIT_PREFIX"), "chacc"),
		AuthCacheTTL:      30 * time.Second,
	}
	p := parser{getenv: getenv}
	p.bytes("CHACC_MAX_BODY_BYTES", &c.MaxBodyBytes)
	p.bytes("CHACC_MAX_UPLOAD_BYTES", &c.MaxUploadBytes)
	p.bytes("CHACC_MAX_UNPACKED_BYTES", &c.MaxUnpackedBytes)
	p.duration("CHACC_MODULE_START_TIMEOUT", &c.StartTimeout)
	p.duration("CHACC_DRAIN_TIMEOUT", &c.DrainTimeout)
	if getenv("GOMAXPROCS") != "" {
		c.GoMaxProcs = 0
	}
	p.count("CHACC_GOMAXPROCS", &c.GoMaxProcs)
	p.count("CHACC_MODULE_GOMAXPROCS", &c.ModuleGoMaxProcs)
	if getenv("GOGC") != "" {
		c.GOGC = 0
	}
	p.percent("CHACC_GOGC", &c.GOGC)
	p.percent("CHACC_MODULE_GOGC", &c.ModuleGOGC)
	p.integer("CHACC_RESTART_MAX", &c.RestartMax)
	p.duration("CHACC_RESTART_WINDOW", &c.RestartWindow)
	p.duration("CHACC_RESTART_BACKOFF_MIN", &c.RestartBackoffMin)
	p.duration("CHACC_RESTART_BACKOFF_MAX", &c.RestartBackoffMax)
	p.duration("CHACC_EVENT_POLL_INTERVAL", &c.EventPollInterval)
	p.duration("CHACC_RECONCILE_INTERVAL", &c.ReconcileInterval)
	p.duration("CHACC_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	p.duration("CHACC_AUTH_CACHE_TTL", &c.AuthCacheTTL)
	p.set("CHACC_ADMIN_TOKEN", func(v string) error {
		if len(v) < 32 {
			return fmt.Errorf("must be at least 32 characters")
		}
		c.AdminToken = v
		return nil
	})
	p.set("CHACC_RATE_LIMIT", func(v string) (err error) {
		c.RateLimit, err = ratelimit.ParseRate(v)
		return err
	})
	p.set("CHACC_PPROF_ADDR", func(v string) error {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return fmt.Errorf("%q is not a host:port address", v)
		}
		c.PprofAddr = v
		return nil
	})
	p.set("CHACC_TRUSTED_PROXIES", func(v string) (err error) {
		c.TrustedProxies, err = parseNets(v)
		return err
	})
	p.set("CHACC_TRUSTED_KEYS", func(v string) (err error) {
		c.TrustedKeys, err = trustedKeys(v)
		return err
	})
	p.set("CHACC_REQUIRE_SIGNED", func(v string) (err error) {
		if c.RequireSigned, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%q is neither true nor false", v)
		}
		return nil
	})
	if p.err != nil {
		return Config{}, p.err
	}
	if c.RequireSigned && len(c.TrustedKeys) == 0 {
		return Config{}, fmt.Errorf("CHACC_REQUIRE_SIGNED=true needs at least one key in CHACC_TRUSTED_KEYS")
	}
	if c.Mode != "development" && c.Mode != "production" {
		return Config{}, fmt.Errorf("CHACC_MODE: %q is neither development nor production", c.Mode)
	}
	switch c.Bridge {
	case "mux", "conns", "grpc":
	default:
		return Config{}, fmt.Errorf("CHACC_BRIDGE: %q is not mux, conns or grpc", c.Bridge)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return Config{}, fmt.Errorf("CHACC_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	return c, nil
}

// parseNets reads comma-separated IPs and CIDRs.
func parseNets(v string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range splitList(v) {
		if !strings.Contains(s, "/") {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR", s)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) set(name string, parse func(string) error) {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" || p.err != nil {
		return
	}
	if err := parse(v); err != nil {
		p.err = fmt.Errorf("%s: %w", name, err)
	}
}

func (p *parser) duration(name string, dst *time.Duration) {
	p.set(name, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 30s", v)
		}
		*dst = d
		return nil
	})
}

func (p *parser) integer(name string, dst *int) {
	p.set(name, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive integer", v)
		}
		*dst = n
		return nil
	})
}

// count accepts 0 (Go's default) or a number of CPUs.
func (p *parser) count(name string, dst *int) {
	p.upTo(name, dst, 1024, "a number of CPUs")
}

// percent accepts a garbage collection percentage: 0 (Go's default) to
// 100000.
func (p *parser) percent(name string, dst *int) {
	p.upTo(name, dst, 100000, "a percentage")
}

// upTo accepts an integer from 0 (Go's default) to max, what it counts.
func (p *parser) upTo(name string, dst *int, max int, what string) {
	p.set(name, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			return fmt.Errorf("%q is not %s from 0 (Go's default) to %d", v, what, max)
		}
		*dst = n
		return nil
	})
}

// bytes accepts a plain number of bytes or one with a KiB, MiB or GiB suffix.
func (p *parser) bytes(name string, dst *int64) {
	p.set(name, func(v string) error {
		mult := int64(1)
		for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
			if strings.HasSuffix(v, suffix) {
				v, mult = strings.TrimSpace(strings.TrimSuffix(v, suffix)), m
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive size such as 10485760 or 10MiB", v)
		}
		*dst = n * mult
		return nil
	})
}

// trustedKeys reads CHACC_TRUSTED_KEYS: comma-separated keys and paths of
// files holding keys.
func trustedKeys(v string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, item := range splitList(v) {
		if strings.HasPrefix(item, "ed25519:") || strings.HasPrefix(item, "-----BEGIN") {
			k, err := archive.ParsePublicKey(item)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
			continue
		}
		data, err := os.ReadFile(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a key (ed25519:<base64>) nor a readable file: %w", item, err)
		}
		ks, err := archive.ParsePublicKeys(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", item, err)
		}
		if len(ks) == 0 {
			return nil, fmt.Errorf("%s holds no key", item)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}
