// Package instance runs one module process: it starts the executable through
// go-plugin with its SHA-256 pinned, serves the core's Host service to it over
// the broker, configures it, and forwards requests and events to it.
package instance

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk/wire"
)

// Config describes the process to start.
type Config struct {
	Name    string
	Version string
	// Dir is the extracted archive; the process runs there.
	Dir string
	// Executable is the absolute path of the module binary.
	Executable string
	// ExecutableSHA256 is the pinned hash (hex); the start fails on mismatch.
	ExecutableSHA256 string
	// JustWritten says the caller wrote Executable itself a moment ago,
	// hashing it as it wrote it (an install extracting its archive): the
	// file is not read again to check the pin. Every other start (boot,
	// enable, restart, upgrade elsewhere) checks it.
	JustWritten bool
	// Env is the process's whole environment (the core's is not inherited).
	Env       []string
	Configure *modulev1.ConfigureRequest
	// Host serves this module's calls to the core.
	Host modulev1.HostServer
	// Bridge: "mux" or "" (the module's direct socket, multiplexed when the
	// module serves it), "conns" (its direct socket, one exchange per
	// connection) or "grpc" (HTTP.Handle streams only).
	Bridge string
	// StartTimeout bounds the whole start. Default: 15s.
	StartTimeout time.Duration
	// Stderr receives the process's stderr and stdout, line by line.
	Stderr func(line string)
	Logger *slog.Logger
}

// Instance is one running module process.
type Instance struct {
	cfg      Config
	client   *plugin.Client
	cmd      *exec.Cmd
	conn     *wire.Conn
	pid      int
	started  time.Time
	describe *modulev1.DescribeResponse

	// direct forwards requests over the module's Unix socket (the SDK's
	// modules serve one); nil means over HTTP.Handle gRPC streams.
	direct    *wire.DirectClient
	socketDir string

	inflight atomic.Int64
	stopping atomic.Bool
	stopOnce sync.Once
	pipes    []*io.PipeWriter // stderr and go-plugin log lines; closed by Kill
}

// ErrStopping is returned by Forward and HandleEvent once Stop has begun: the
// request was not sent and may go to the instance that replaced this one.
var ErrStopping = errors.New("module instance is stopping")

// Start starts the process and returns once it is configured, described and
// healthy. On any failure the process is killed.
func Start(ctx context.Context, cfg Config) (*Instance, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 15 * time.Second
	}
	sum, err := hex.DecodeString(cfg.ExecutableSHA256)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("bad pinned checksum %q", cfg.ExecutableSHA256)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	cmd := exec.Command(cfg.Executable)
	cmd.Dir = cfg.Dir
	cmd.Env = cfg.Env
	setProcAttr(cmd)
	inst := &Instance{cfg: cfg, cmd: cmd}
	secure := &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	if cfg.JustWritten {
		secure = nil
	}
	// Output written before go-plugin takes over the module's stdio (and a
	// crash's trace) comes through Stderr; later writes to os.Stdout and
	// os.Stderr through go-plugin's stdio stream (SyncStdout, SyncStderr).
	stderr, syncOut, syncErr := lineWriter(cfg.Stderr), lineWriter(cfg.Stderr), lineWriter(cfg.Stderr)
	logOut := lineWriter(pluginLogLine(logger(cfg.Logger), filepath.Base(cfg.Executable)))
	inst.pipes = []*io.PipeWriter{stderr, syncOut, syncErr, logOut}
	inst.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          plugin.PluginSet{wire.PluginName: &wire.Plugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     cfg.StartTimeout,
		Stderr:           stderr,
		SyncStdout:       syncOut,
		SyncStderr:       syncErr,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "go-plugin", Level: hclog.Warn, Output: logOut, JSONFormat: true}),
		GRPCDialOptions:  wire.DialOptions(),
	})
	if err := inst.start(ctx); err != nil {
		inst.Kill()
		return nil, err
	}
	return inst, nil
}

func (i *Instance) start(ctx context.Context) error {
	rpc, err := i.client.Client()
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fmt.Errorf("executable checksum does not match the one pinned at install: %w", err)
		}
		return fmt.Errorf("start process: %w", err)
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	i.conn = raw.(*wire.Conn)
	if i.cmd.Process != nil {
		i.pid = i.cmd.Process.Pid
	}
	i.started = time.Now()

	brokerID := i.conn.Broker.NextId()
	go i.conn.Broker.AcceptAndServe(brokerID, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(wire.ServerOptions(opts...)...)
		modulev1.RegisterHostServer(s, i.cfg.Host)
		return s
	})
	creq := i.cfg.Configure
	creq.HostBrokerId = brokerID
	creq.HostApiVersion = wire.HostAPIVersion
	// The direct HTTP path: a socket in a directory of the core's own (mode
	// 0700), short enough for a Unix socket path.
	if i.socketDir, err = os.MkdirTemp("", "chacc-"); err != nil {
		return err
	}
	creq.HttpSocket = filepath.Join(i.socketDir, "http.sock")
	cresp, err := i.conn.Module.Configure(ctx, creq)
	if err != nil {
		return fmt.Errorf("configure: %w", statusMessage(err))
	}
	if cresp.GetHttpSocket() == creq.HttpSocket && i.cfg.Bridge != "grpc" {
		i.direct = wire.NewDirectClient(creq.HttpSocket)
		if i.cfg.Bridge == "conns" {
			i.direct = wire.NewPerConnClient(creq.HttpSocket)
		}
		if err := i.direct.Warm(ctx); err != nil {
			return fmt.Errorf("direct HTTP socket: %w", err)
		}
	}
	if i.describe, err = i.conn.Module.Describe(ctx, &modulev1.DescribeRequest{}); err != nil {
		return fmt.Errorf("describe: %w", statusMessage(err))
	}
	if err := i.Health(ctx); err != nil {
		return err
	}
	return nil
}

// Name returns the module's name; Version the running version.
func (i *Instance) Name() string    { return i.cfg.Name }
func (i *Instance) Version() string { return i.cfg.Version }

// PID is the process id.
func (i *Instance) PID() int { return i.pid }

// StartedAt is when the process was started.
func (i *Instance) StartedAt() time.Time { return i.started }

// Describe is what the module declared at start.
func (i *Instance) Describe() *modulev1.DescribeResponse { return i.describe }

// Exited is closed when the process has exited, for whatever reason.
func (i *Instance) Exited() <-chan struct{} { return i.conn.Done() }

// InFlight is the number of requests being served.
func (i *Instance) InFlight() int64 { return i.inflight.Load() }

// Health asks the module whether it can serve.
func (i *Instance) Health(ctx context.Context) error {
	resp, err := i.conn.Module.Health(ctx, &modulev1.HealthRequest{})
	if err != nil {
		return fmt.Errorf("health: %w", statusMessage(err))
	}
	if !resp.GetOk() {
		return fmt.Errorf("health: module reports unhealthy: %s", resp.GetMessage())
	}
	return nil
}

// Forward carries one HTTP exchange to the module, over its direct socket
// when it serves one (see wire.DirectClient), else over a gRPC stream (see
// wire.Forward).
func (i *Instance) Forward(ctx context.Context, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
	if !i.enter() {
		return ErrStopping
	}
	defer i.inflight.Add(-1)
	if i.direct != nil {
		return i.direct.Forward(ctx, head, body, w)
	}
	return wire.Forward(ctx, i.conn.HTTP, head, body, w)
}

// enter counts a request in flight unless Stop has begun. Stop sets stopping
// before it reads the count, so a request is either counted and drained, or
// refused before anything is sent.
func (i *Instance) enter() bool {
	i.inflight.Add(1)
	if i.stopping.Load() {
		i.inflight.Add(-1)
		return false
	}
	return true
}

// Authenticate asks an authenticator module about a credential.
func (i *Instance) Authenticate(ctx context.Context, req *modulev1.AuthenticateRequest) (*modulev1.AuthenticateResponse, error) {
	if !i.enter() {
		return nil, ErrStopping
	}
	defer i.inflight.Add(-1)
	resp, err := i.conn.Module.Authenticate(ctx, req)
	if err != nil {
		return nil, statusMessage(err)
	}
	return resp, nil
}

// HandleEvent delivers one event.
func (i *Instance) HandleEvent(ctx context.Context, ev *modulev1.Event) error {
	if !i.enter() {
		return ErrStopping
	}
	defer i.inflight.Add(-1)
	_, err := i.conn.Module.HandleEvent(ctx, ev)
	if err != nil {
		return statusMessage(err)
	}
	return nil
}

// Stop waits for in-flight requests to finish (until ctx is done), asks the
// module to shut down, and ends the process. It may be called more than once.
func (i *Instance) Stop(ctx context.Context) {
	i.stopOnce.Do(func() {
		i.stopping.Store(true)
	drain:
		for i.inflight.Load() > 0 {
			select {
			case <-ctx.Done():
				break drain
			case <-i.Exited():
				break drain
			case <-time.After(5 * time.Millisecond):
			}
		}
		select {
		case <-i.Exited():
		default:
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = i.conn.Module.Shutdown(sctx, &modulev1.ShutdownRequest{})
			cancel()
		}
		i.Kill()
	})
}

// Kill ends the process at once (if it still runs) and releases everything
// the instance holds: the connection, the broker and its Host server, the log
// pipes. It is also how a crashed instance is cleaned up.
func (i *Instance) Kill() {
	i.stopping.Store(true)
	i.client.Kill()
	for _, p := range i.pipes {
		_ = p.Close()
	}
	if i.direct != nil {
		_ = i.direct.Close()
	}
	if i.socketDir != "" {
		_ = os.RemoveAll(i.socketDir)
	}
}

// statusMessage turns a gRPC status error into a plain error with its message.
func statusMessage(err error) error {
	if st, ok := status.FromError(err); ok {
		return errors.New(st.Message())
	}
	return err
}

// lineWriter turns a byte stream into calls of fn per line, until closed.
func lineWriter(fn func(string)) *io.PipeWriter {
	if fn == nil {
		fn = func(string) {}
	}
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fn(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}

// logger returns l, or the default logger.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
