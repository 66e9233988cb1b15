package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
	"github.com/chacc/chacc/sdk/wire"
)

// Server is the module side of the wire: it serves the Module and HTTP
// services for one [Module]. [Serve] runs it under go-plugin and sdktest runs
// it in-process; authors do not use it directly.
type Server struct {
	modulev1.UnimplementedModuleServer
	modulev1.UnimplementedHTTPServer

	mod      Module
	dialHost func(brokerID uint32) (grpc.ClientConnInterface, error)

	mu   sync.RWMutex
	rt   *Runtime
	http modulev1.HTTPServer
	// direct is the listener of the direct HTTP path, nil when not served.
	direct net.Listener
	// settled, when set, runs once Setup has succeeded. [Serve] sets it to
	// releaseStartup; in-process (sdktest) there is nothing to release.
	settled func(*slog.Logger)
}

var _ wire.ModuleServer = (*Server)(nil)

// NewServer returns the server for m. dialHost connects to the core's Host
// service given the broker id from Configure.
func NewServer(m Module, dialHost func(brokerID uint32) (grpc.ClientConnInterface, error)) *Server {
	return &Server{mod: m, dialHost: dialHost}
}

// Runtime returns the module's runtime, nil before Configure.
func (s *Server) Runtime() *Runtime {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rt
}

// Configure runs Setup. It may be called once.
func (s *Server) Configure(ctx context.Context, req *modulev1.ConfigureRequest) (*modulev1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rt != nil {
		return nil, status.Error(codes.FailedPrecondition, "module already configured")
	}
	if s.mod.Setup == nil {
		return nil, status.Error(codes.FailedPrecondition, "module has no Setup function")
	}
	var m Manifest
	if err := json.Unmarshal(req.GetManifestJson(), &m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest: %v", err)
	}
	rt := &Runtime{
		manifest: m,
		settings: req.GetSettings(),
		mode:     req.GetMode(),
		dataDir:  req.GetDataDir(),
		handlers: make(map[string]EventHandler),
	}
	if db := req.GetDatabase(); db != nil {
		rt.database = Database{Driver: db.GetDriver(), DSN: db.GetDsn(), Schema: db.GetSchema()}
	}
	if s.dialHost != nil && req.GetHostBrokerId() != 0 {
		cc, err := s.dialHost(req.GetHostBrokerId())
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "connect to host: %v", err)
		}
		rt.host = modulev1.NewHostClient(cc)
	}
	rt.logger = slog.New(newHostLogHandler(rt.host, m.Name, slog.LevelDebug))

	h, err := s.mod.Setup(ctx, rt)
	rt.mu.Lock()
	rt.setupClosed = true
	rt.mu.Unlock()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "setup: %v", err)
	}
	if h == nil {
		return nil, status.Error(codes.FailedPrecondition, "setup returned no handler")
	}
	s.rt = rt
	s.http = wire.NewHTTPServer(h, rt.logger)
	if s.settled != nil {
		// After answering, not before: it takes a full GC.
		go s.settled(rt.logger)
	}
	resp := &modulev1.ConfigureResponse{}
	if path := req.GetHttpSocket(); path != "" {
		// The direct path (see wire.ServeDirect); HTTP.Handle keeps working
		// when it cannot be served.
		if ln, err := net.Listen("unix", path); err != nil {
			rt.logger.Warn("direct HTTP socket unavailable; requests come over gRPC", "error", err.Error())
		} else {
			s.direct = ln
			go func() { _ = wire.ServeDirect(ln, h, rt.logger) }()
			resp.HttpSocket = path
		}
	}
	return resp, nil
}

// Describe returns the declared routes, subscriptions and OpenAPI fragment.
func (s *Server) Describe(ctx context.Context, _ *modulev1.DescribeRequest) (*modulev1.DescribeResponse, error) {
	rt := s.Runtime()
	if rt == nil {
		return nil, status.Error(codes.FailedPrecondition, "module not configured")
	}
	resp := &modulev1.DescribeResponse{
		Subscribes:  rt.subscriptions(),
		OpenapiJson: s.openAPI(rt.Manifest()),
		SdkVersion:  Version,
	}
	for _, r := range s.mod.Routes {
		pr := &modulev1.Route{
			Method: r.Method, Path: r.Path, MinRole: r.MinRole, Scopes: r.Scopes,
			MaxBodyBytes: r.MaxBodyBytes, Summary: r.Summary,
		}
		if r.RateLimit != nil {
			pr.RateLimit = &modulev1.RateLimit{
				Requests: uint32(r.RateLimit.Requests), PeriodSeconds: uint32(r.RateLimit.Period / time.Second),
				Key: r.RateLimit.Key,
			}
		}
		resp.Routes = append(resp.Routes, pr)
	}
	if a := rt.authenticatorOrNil(); a != nil {
		auth, err := describeAuthenticator(ctx, a)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "describe: %v", err)
		}
		resp.Authenticator = auth
	}
	return resp, nil
}

// Health calls the module's health check.
func (s *Server) Health(ctx context.Context, _ *modulev1.HealthRequest) (*modulev1.HealthResponse, error) {
	rt := s.Runtime()
	if rt == nil {
		return &modulev1.HealthResponse{Ok: false, Message: "not configured"}, nil
	}
	rt.mu.RLock()
	check := rt.health
	rt.mu.RUnlock()
	if check != nil {
		if err := check(ctx); err != nil {
			return &modulev1.HealthResponse{Ok: false, Message: err.Error()}, nil
		}
	}
	return &modulev1.HealthResponse{Ok: true}, nil
}

// HandleEvent runs the handler registered for the event's type. An event with
// no handler is acknowledged.
func (s *Server) HandleEvent(ctx context.Context, ev *modulev1.Event) (*modulev1.HandleEventResponse, error) {
	rt := s.Runtime()
	if rt == nil {
		return nil, status.Error(codes.Unavailable, "module not configured")
	}
	h := rt.handlerFor(ev.GetType())
	if h == nil {
		return &modulev1.HandleEventResponse{}, nil
	}
	ctx = wire.WithHead(ctx, &modulev1.RequestHead{RequestId: ev.GetRequestId(), CorrelationId: ev.GetCorrelationId()})
	e := Event{
		ID: ev.GetId(), Type: ev.GetType(), Source: ev.GetSource(), Sequence: ev.GetSequence(),
		Time: time.Unix(0, ev.GetTimeUnixNano()).UTC(), Data: ev.GetData(),
		RequestID: ev.GetRequestId(), CorrelationID: ev.GetCorrelationId(),
	}
	if err := callHandler(ctx, h, e); err != nil {
		return nil, status.Errorf(codes.Aborted, "event %s (%s): %v", e.ID, e.Type, err)
	}
	return &modulev1.HandleEventResponse{}, nil
}

func callHandler(ctx context.Context, h EventHandler, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return h(ctx, e)
}

// Shutdown stops accepting direct HTTP connections and runs the OnShutdown
// functions in reverse order.
func (s *Server) Shutdown(ctx context.Context, _ *modulev1.ShutdownRequest) (*modulev1.ShutdownResponse, error) {
	rt := s.Runtime()
	if rt == nil {
		return &modulev1.ShutdownResponse{}, nil
	}
	s.mu.RLock()
	if s.direct != nil {
		_ = s.direct.Close()
	}
	s.mu.RUnlock()
	rt.mu.Lock()
	fns := rt.onShutdown
	rt.onShutdown = nil
	rt.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i](ctx))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "shutdown: %v\n", err)
		return nil, status.Errorf(codes.Internal, "shutdown: %v", err)
	}
	return &modulev1.ShutdownResponse{}, nil
}

// Handle serves one HTTP exchange.
func (s *Server) Handle(stream modulev1.HTTP_HandleServer) error {
	s.mu.RLock()
	h := s.http
	s.mu.RUnlock()
	if h == nil {
		return status.Error(codes.Unavailable, "module not configured")
	}
	return h.Handle(stream)
}

// Errors returned by Runtime calls, matched with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrForbidden   = errors.New("forbidden")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("unavailable")
)

func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.NotFound:
		kind = ErrNotFound
	case codes.PermissionDenied:
		kind = ErrForbidden
	case codes.InvalidArgument:
		kind = ErrInvalid
	case codes.Unavailable, codes.DeadlineExceeded:
		kind = ErrUnavailable
	default:
		return fmt.Errorf("sdk: host: %s", st.Message())
	}
	return fmt.Errorf("sdk: %w: %s", kind, st.Message())
}
