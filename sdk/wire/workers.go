package wire

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"time"
)

// workers runs the exchanges of a module's direct path on goroutines that
// serve one exchange after another. A goroutine started per exchange began
// with the smallest stack and grew it on every request, up to the depth of
// the handler, then exited: under load that was 15% of a module's CPU
// (runtime.morestack and goexit0, BENCHMARKS.md). A worker keeps its stack
// from one exchange to the next; the garbage collector still shrinks the
// stacks of idle ones.
//
// A worker serves one exchange after another, as net/http serves the
// requests of a keep-alive connection on one goroutine: what a handler sets
// on its goroutine is reset after it (profiling labels, panic on fault),
// but a handler that locks its goroutine to its OS thread must unlock it,
// or the exchanges after it run on that thread (Go ends a locked thread
// only with its goroutine).
//
// Idle workers wait, newest first (their stacks are the warmest), for up to
// workerIdle; at most maxIdleWorkers wait at once. An exchange that finds no
// idle worker starts one: there is no limit on exchanges in flight beyond
// the core's own (its connections and the multiplexed window), as with a
// goroutine per exchange.
type workers struct {
	h       http.Handler
	log     *slog.Logger
	idleFor time.Duration // workerIdle but in tests
	maxIdle int           // maxIdleWorkers but in tests

	mu   sync.Mutex
	idle []chan job
}

// job is what a worker runs: an exchange.
type job interface {
	run(h http.Handler, log *slog.Logger)
}

const (
	// workerIdle is how long an idle worker waits for an exchange before it
	// exits.
	workerIdle = 10 * time.Second
	// maxIdleWorkers bounds the idle workers (and their stacks).
	maxIdleWorkers = 256
)

func newWorkers(h http.Handler, log *slog.Logger) *workers {
	return &workers{h: h, log: log, idleFor: workerIdle, maxIdle: maxIdleWorkers}
}

// run serves x on an idle worker, or on a new one.
func (p *workers) run(x job) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		ch := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		ch <- x // buffered: never blocks
		return
	}
	p.mu.Unlock()
	go p.work(x)
}

// work serves x, then waits for the next exchange until it has been idle
// for workerIdle, or there are enough idle workers already.
func (p *workers) work(x job) {
	ch := make(chan job, 1)
	var idle *time.Timer
	for {
		x.run(p.h, p.log)
		x = nil
		resetGoroutine()
		p.mu.Lock()
		if len(p.idle) >= p.maxIdle {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, ch)
		p.mu.Unlock()
		if idle == nil {
			idle = time.NewTimer(p.idleFor)
		} else {
			idle.Reset(p.idleFor)
		}
		select {
		case x = <-ch:
			continue
		case <-idle.C:
		}
		if p.retire(ch) {
			return
		}
		// run took this worker between the timer and retire: its exchange
		// is on the way.
		x = <-ch
	}
}

// resetGoroutine undoes what a handler may have set on its goroutine.
func resetGoroutine() {
	pprof.SetGoroutineLabels(context.Background())
	debug.SetPanicOnFault(false)
}

// retire removes ch from the idle workers; false if run has taken it.
func (p *workers) retire(ch chan job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.idle {
		if c == ch {
			n := copy(p.idle[i:], p.idle[i+1:])
			p.idle[i+n] = nil
			p.idle = p.idle[:i+n]
			return true
		}
	}
	return false
}
