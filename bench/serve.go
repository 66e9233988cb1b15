package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/examples/hello/helloapp"
	"github.com/chacc/chacc/sdk/wire"
)

// The bench program re-runs itself as the servers it compares the core
// with, so that each contender is a process of its own, as the core is:
//
//	bench serve-inproc ADDR DRIVER DSN   the hello handler mounted on an Echo
//	                                     server, no core, no module process
//	bench serve-gateway ADDR UPSTREAM    httputil.ReverseProxy to UPSTREAM (a
//	                                     serve-inproc: "modules as microservices")
//	bench serve-hop ADDR DRIVER DSN SOCK serve-inproc, but every request first
//	                                     makes a bare round trip to a serve-pong
//	bench serve-pong SOCK [BUSY]         answers every 64 bytes on the Unix
//	                                     socket SOCK with 64 bytes, after
//	                                     BUSY (a duration) of busy work
//
// Each prints "ready" on stdout once it listens, and stops on SIGTERM.
func serveMain(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: bench serve-inproc ADDR DRIVER DSN | bench serve-gateway ADDR UPSTREAM")
	}
	var h http.Handler
	switch {
	case args[0] == "serve-pong" && (len(args) == 2 || len(args) == 3):
		var busy time.Duration
		if len(args) == 3 {
			d, err := time.ParseDuration(args[2])
			if err != nil {
				return err
			}
			busy = d
		}
		return servePong(args[1], busy)
	case (args[0] == "serve-inproc" && len(args) == 4) || (args[0] == "serve-hop" && len(args) == 5):
		st, err := helloapp.OpenStore(context.Background(), sdk.Database{Driver: args[2], DSN: args[3]})
		if err != nil {
			return err
		}
		defer st.Close()
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.Any("/hello/*", echo.WrapHandler(helloapp.NewAPI(inprocHost{}, st).Handler()))
		h = e
		if args[0] == "serve-hop" {
			h = hopFirst(args[4], h)
		}
	case args[0] == "serve-gateway" && len(args) == 3:
		u, err := url.Parse(args[2])
		if err != nil {
			return err
		}
		p := httputil.NewSingleHostReverseProxy(u)
		// The default transport keeps 2 idle connections per host, which would
		// make the gateway open and close connections under load: give it as
		// many as the load has.
		p.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
		}
		p.FlushInterval = -1 // stream (SSE, echo) as the core does
		h = p
	default:
		return fmt.Errorf("unknown serve mode %q", args[0])
	}
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		return err
	}
	if args[0] == "serve-hop" {
		// The floor reads and writes its sockets as the core does
		// (wire.NonblockingConn); the in-process servers as a user's Echo
		// server would.
		ln = wire.NonblockingListener(ln)
	}
	// The echo route answers while the body still arrives; HTTP/1 servers
	// must be told, as the core's proxy tells its own.
	next := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		next.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Println("ready")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// inprocHost stands in for the core when the hello handler runs without it:
// the benchmarked routes use only the manifest's version.
type inprocHost struct{}

func (inprocHost) Manifest() sdk.Manifest { return sdk.Manifest{Name: "hello", Version: "0.1.0"} }
func (inprocHost) Logger() *slog.Logger   { return slog.New(slog.DiscardHandler) }
func (inprocHost) Publish(context.Context, string, any) (string, error) {
	return "", sdk.ErrUnavailable
}
func (inprocHost) Call(context.Context, string, string, string, http.Header, []byte) (*sdk.CallResponse, error) {
	return nil, sdk.ErrUnavailable
}

// The floor of any module bridge that crosses a process boundary per
// request: serve-hop is the in-process server plus, for every request, one
// bare round trip (64 bytes each way) over a pooled Unix socket connection
// to serve-pong, which does nothing but answer. No framing, no protobuf, no
// hand-off to a handler goroutine on the far side: what is left is the
// kernel's part of crossing to another process and back (two writes, two
// reads, the wake-ups), with the sockets read and written as chacc's are.
// The gap between it and in-process is what no one-exchange-per-connection
// bridge can beat on the machine.

const hopBytes = 64

func servePong(sock string, busy time.Duration) error {
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = ln.Close() }()
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c = wire.NonblockingConn(c)
		go func() {
			defer c.Close()
			var b [hopBytes]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				// A peer that works before it answers, as a module's
				// handler does: the CPU stays busy, nothing sleeps.
				if busy > 0 {
					for t0 := time.Now(); time.Since(t0) < busy; {
					}
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		}()
	}
}

// hopFirst makes a round trip to serve-pong at sock before every request.
func hopFirst(sock string, next http.Handler) http.Handler {
	var (
		mu   sync.Mutex
		idle []net.Conn
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		var c net.Conn
		if n := len(idle); n > 0 {
			c, idle = idle[n-1], idle[:n-1]
		}
		mu.Unlock()
		if c == nil {
			var err error
			if c, err = net.Dial("unix", sock); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c = wire.NonblockingConn(c)
		}
		var b [hopBytes]byte
		if _, err := c.Write(b[:]); err != nil {
			c.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			c.Close()
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		mu.Lock()
		idle = append(idle, c)
		mu.Unlock()
		next.ServeHTTP(w, r)
	})
}
