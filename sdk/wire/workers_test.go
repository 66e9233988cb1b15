package wire

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testJob records the goroutine that ran it and waits for release.
type testJob struct {
	release chan struct{} // nil: returns at once
	ran     chan uint64   // the goroutine's id
	before  func()        // runs first, when set
}

func (j *testJob) run(http.Handler, *slog.Logger) {
	if j.before != nil {
		j.before()
	}
	if j.release != nil {
		<-j.release
	}
	j.ran <- goroutineID()
}

func newTestJob(wait bool) *testJob {
	j := &testJob{ran: make(chan uint64, 1)}
	if wait {
		j.release = make(chan struct{})
	}
	return j
}

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

func waitRan(t *testing.T, j *testJob) uint64 {
	t.Helper()
	select {
	case id := <-j.ran:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("the job was not run")
		return 0
	}
}

// idleWorkers is how many workers wait for an exchange.
func (p *workers) idleWorkers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// waitIdle waits until n workers are idle.
func waitIdle(t *testing.T, p *workers, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.idleWorkers() == n }, 10*time.Second, time.Millisecond)
}

// Exchanges one after another run on one goroutine, which keeps its stack.
func TestWorkersReuseAGoroutine(t *testing.T) {
	p := newWorkers(nil, nil)
	first := newTestJob(false)
	p.run(first)
	id := waitRan(t, first)
	for range 20 {
		waitIdle(t, p, 1)
		j := newTestJob(false)
		p.run(j)
		assert.Equal(t, id, waitRan(t, j))
	}
}

// Exchanges at once run at once, each on its own worker, and no more
// workers than maxIdle stay once they are done.
func TestWorkersRunConcurrentlyAndKeepFewIdle(t *testing.T) {
	p := newWorkers(nil, nil)
	p.maxIdle = 3
	jobs := make([]*testJob, 10)
	for i := range jobs {
		jobs[i] = newTestJob(true)
		p.run(jobs[i])
	}
	// None has returned: ten run at once.
	assert.Equal(t, 0, p.idleWorkers())
	ids := map[uint64]bool{}
	for _, j := range jobs {
		close(j.release)
		ids[waitRan(t, j)] = true
	}
	assert.Len(t, ids, 10, "ten goroutines")
	waitIdle(t, p, 3)
	// More finishing exchanges do not add idle workers.
	j := newTestJob(false)
	p.run(j)
	waitRan(t, j)
	waitIdle(t, p, 3)
}

// An idle worker exits after idleFor; exchanges after that start new ones.
func TestWorkersRetireWhenIdle(t *testing.T) {
	p := newWorkers(nil, nil)
	p.idleFor = 20 * time.Millisecond
	j := newTestJob(false)
	p.run(j)
	id := waitRan(t, j)
	waitIdle(t, p, 0) // joined the idle ones, then retired
	j = newTestJob(false)
	p.run(j)
	assert.NotEqual(t, id, waitRan(t, j), "a new goroutine")
}

// Exchanges that arrive as idle workers retire are all run: the worker
// that run takes between its timer and retire serves the exchange handed to
// it. (Run with -race; a lost exchange fails waitRan.)
func TestWorkersLoseNothingWhileRetiring(t *testing.T) {
	p := newWorkers(nil, nil)
	p.idleFor = 50 * time.Microsecond
	p.maxIdle = 4
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 500 {
				j := newTestJob(false)
				p.run(j)
				select {
				case <-j.ran:
				case <-time.After(10 * time.Second):
					t.Error("an exchange was not run")
					return
				}
				time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
}

// What a handler sets on its goroutine does not follow the worker into the
// next exchange: profiling labels and panic-on-fault are reset.
func TestWorkersResetGoroutineState(t *testing.T) {
	type state struct {
		labels string
		fault  bool
	}
	seen := make(chan state, 1)
	var first atomic.Bool
	first.Store(true)
	p := newWorkers(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil)
	j := newTestJob(false)
	j.before = func() {
		if first.Swap(false) {
			pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("tenant", "alice")))
			debug.SetPanicOnFault(true)
			return
		}
		var prof bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&prof, 1)
		fault := debug.SetPanicOnFault(false)
		seen <- state{labels: prof.String(), fault: fault}
	}
	p.run(j)
	id := waitRan(t, j)
	waitIdle(t, p, 1)
	j2 := newTestJob(false)
	j2.before = j.before
	p.run(j2)
	require.Equal(t, id, waitRan(t, j2), "the same worker")
	st := <-seen
	assert.NotContains(t, st.labels, `"tenant":"alice"`)
	assert.False(t, st.fault)
}
