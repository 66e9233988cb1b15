// Package sdktest runs a chacc module in-process with a fake host, so that a
// module's tests need no core.
//
// [Start] serves the module over the real protocol: the module's gRPC
// services and the fake Host each run on an in-memory listener, requests are
// forwarded with the same bridge the core uses, and events are delivered over
// Module.HandleEvent. What a test sees is what the core would see:
//
//	func TestPing(t *testing.T) {
//		h := sdktest.Start(t, module(), sdktest.Options{ManifestFile: "module_meta.json"})
//		resp := h.Do(httptest.NewRequest(http.MethodGet, "/hello/ping", nil))
//		assert.Equal(t, http.StatusOK, resp.StatusCode)
//	}
//
// The fake host records what the module publishes ([Harness.Published]) and
// logs ([Harness.Logs]), enforces the manifest's "publishes" list as the core
// does, and answers [sdk.Runtime.Call] with [Options.Call].
package sdktest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/wire"
)

// Options configures the module under test and its fake host.
type Options struct {
	// Manifest is the installed manifest the module is configured with.
	// Default: name "test", version "0.0.0", base_path_prefix "/test".
	Manifest sdk.Manifest
	// ManifestFile, when set, is a module_meta.json read instead of Manifest.
	ManifestFile string
	// Settings are the module's settings, as [sdk.Runtime.Setting] returns
	// them.
	Settings map[string]string
	// Database is the module's namespace. Default: a SQLite file in
	// t.TempDir(), opened with the parameters the core uses.
	Database *sdk.Database
	// Mode is "development" or "production". Default: "development".
	Mode string
	// Call answers the module's [sdk.Runtime.Call]; an error it returns
	// should be a gRPC status, as the core's are. Default: codes.NotFound, as
	// the core answers when no module serves the path ([sdk.ErrNotFound] for
	// the caller).
	Call func(ctx context.Context, req *modulev1.CallRequest) (*modulev1.CallResponse, error)
	// GRPCOnly forwards requests over HTTP.Handle gRPC streams instead of the
	// direct socket the core uses with modules that serve it (the SDK's do).
	// Default: false, the direct socket.
	GRPCOnly bool
}

// hostBrokerID is the broker id the module is told to dial for the Host; any
// non-zero value does, as the harness connects it directly.
const hostBrokerID = 1

// bufSize is the buffer of each in-memory connection.
const bufSize = 256 << 10

// shutdownTimeout bounds the module's Shutdown at cleanup.
const shutdownTimeout = 10 * time.Second

// Harness is a module running in-process, configured and healthy. Its methods
// are safe for concurrent use.
type Harness struct {
	t        testing.TB
	manifest sdk.Manifest
	host     *host
	module   modulev1.ModuleClient
	http     modulev1.HTTPClient
	direct   *wire.DirectClient // nil: requests go over http
	describe *modulev1.DescribeResponse
	routes   []wire.Pattern

	deliverMu sync.Mutex
	delivered int // published events DeliverPublished has passed

	srvOnce sync.Once
	srv     *httptest.Server
}

// Start runs m in-process and configures it as the core would: Configure
// (which runs Setup), Describe, then Health. It fails t if any of them fails
// or the module is unhealthy. When the test ends, the module's Shutdown runs
// and everything Start started is stopped.
func Start(t testing.TB, m sdk.Module, opts Options) *Harness {
	t.Helper()
	manifest := opts.manifest(t)
	h := &Harness{t: t, manifest: manifest, host: newHost(t, manifest, opts.Call)}

	hostSrv, hostLis := listen(func(s *grpc.Server) { modulev1.RegisterHostServer(s, h.host) })
	hostConn, err := dial(hostLis)
	if err != nil {
		t.Fatalf("sdktest: dial host: %v", err)
	}
	dialHost := func(brokerID uint32) (grpc.ClientConnInterface, error) {
		if brokerID != hostBrokerID {
			return nil, fmt.Errorf("sdktest: unknown host broker id %d", brokerID)
		}
		return hostConn, nil
	}
	server := sdk.NewServer(m, dialHost)
	modSrv, modLis := listen(func(s *grpc.Server) {
		modulev1.RegisterModuleServer(s, server)
		modulev1.RegisterHTTPServer(s, server)
	})
	modConn, err := dial(modLis)
	if err != nil {
		t.Fatalf("sdktest: dial module: %v", err)
	}
	h.module = modulev1.NewModuleClient(modConn)
	h.http = modulev1.NewHTTPClient(modConn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if _, err := h.module.Shutdown(ctx, &modulev1.ShutdownRequest{}); err != nil {
			t.Errorf("sdktest: module shutdown: %v", err)
		}
		modConn.Close()
		modSrv.Stop()
		hostConn.Close()
		hostSrv.Stop()
		h.host.close()
	})

	ctx := t.Context()
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		t.Fatalf("sdktest: manifest: %v", err)
	}
	// The direct socket lives in a short private directory: a Unix socket
	// path must fit in 108 bytes, which t.TempDir() may exceed.
	var socket string
	if !opts.GRPCOnly {
		dir, err := os.MkdirTemp("", "sdktest-")
		if err != nil {
			t.Fatalf("sdktest: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		socket = filepath.Join(dir, "http.sock")
	}
	cresp, err := h.module.Configure(ctx, &modulev1.ConfigureRequest{
		HostApiVersion: wire.HostAPIVersion,
		ManifestJson:   manifestJSON,
		Settings:       opts.Settings,
		Database:       opts.database(t),
		HostBrokerId:   hostBrokerID,
		Mode:           cmp.Or(opts.Mode, "development"),
		DataDir:        t.TempDir(),
		HttpSocket:     socket,
	})
	if err != nil {
		t.Fatalf("sdktest: configure: %v", err)
	}
	if socket != "" && cresp.GetHttpSocket() == socket {
		h.direct = wire.NewDirectClient(socket)
		t.Cleanup(func() { h.direct.Close() })
	}

	if h.describe, err = h.module.Describe(ctx, &modulev1.DescribeRequest{}); err != nil {
		t.Fatalf("sdktest: describe: %v", err)
	}
	for _, r := range h.describe.GetRoutes() {
		h.routes = append(h.routes, wire.CompilePattern(r.GetMethod(), r.GetPath()))
	}
	if err := h.Health(ctx); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	return h
}

// Manifest returns the manifest the module was configured with.
func (h *Harness) Manifest() sdk.Manifest { return h.manifest }

// Describe returns the module's answer to Describe.
func (h *Harness) Describe() *modulev1.DescribeResponse { return h.describe }

// Routes returns the routes the module declares.
func (h *Harness) Routes() []*modulev1.Route { return h.describe.GetRoutes() }

// Subscribes returns the event types the module registered handlers for.
func (h *Harness) Subscribes() []string { return h.describe.GetSubscribes() }

// Health calls the module's health check; it returns nil when the module
// reports itself healthy.
func (h *Harness) Health(ctx context.Context) error {
	resp, err := h.module.Health(ctx, &modulev1.HealthRequest{})
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if !resp.GetOk() {
		return fmt.Errorf("module unhealthy: %s", resp.GetMessage())
	}
	return nil
}

// Logs returns the lines the module logged through [sdk.Runtime.Logger], in
// order. They are also written to the test's log.
func (h *Harness) Logs() []*modulev1.LogRequest { return h.host.logLines() }

// manifest returns the manifest opts selects.
func (opts Options) manifest(t testing.TB) sdk.Manifest {
	t.Helper()
	if opts.ManifestFile == "" {
		m := opts.Manifest
		if m.Name == "" {
			m.Name, m.BasePathPrefix = "test", "/test"
		}
		m.Version = cmp.Or(m.Version, "0.0.0")
		return m
	}
	raw, err := os.ReadFile(opts.ManifestFile)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	var m sdk.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("sdktest: %s: %v", opts.ManifestFile, err)
	}
	return m
}

// database returns the namespace opts selects.
func (opts Options) database(t testing.TB) *modulev1.Database {
	d := opts.Database
	if d == nil {
		d = SQLite(t)
	}
	return &modulev1.Database{Driver: d.Driver, Dsn: d.DSN, Schema: d.Schema}
}

// SQLite returns a module namespace for [Options.Database] as the core makes
// one on SQLite: a new file, here in t.TempDir(), with the core's connection
// parameters. It is the default of [Options.Database]; use it to share one
// database between two harnesses.
func SQLite(t testing.TB) *sdk.Database {
	dsn := filepath.Join(t.TempDir(), "module.db") +
		"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
		"&_txlock=immediate&_time_format=sqlite"
	return &sdk.Database{Driver: "sqlite", DSN: dsn}
}

// listen starts a gRPC server with the wire's options on an in-memory
// listener.
func listen(register func(*grpc.Server)) (*grpc.Server, *bufconn.Listener) {
	lis := bufconn.Listen(bufSize)
	s := grpc.NewServer(wire.ServerOptions()...)
	register(s)
	go s.Serve(lis)
	return s, lis
}

// dial makes a client of an in-memory listener with the wire's options; it
// connects on first use.
func dial(lis *bufconn.Listener) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///bufconn", wire.DialOptions(
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)...)
}
