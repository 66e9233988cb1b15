package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/store/storetest"
)

func installHello(t *testing.T, s *server) {
	t.Helper()
	r := s.uploadFile(helloV1)
	require.Equal(t, 201, r.status, "%s", r.body)
}

func TestStreaming(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)

		t.Run("a second after Setup the module gives back its start-up memory", func(t *testing.T) {
			assert.True(t, s.assertLogged(t, "released start-up memory"))
			assert.NotContains(t, s.logText(), "releasing the executable's start-up pages failed")
		})

		t.Run("1 MiB echo", func(t *testing.T) {
			payload := make([]byte, 1<<20)
			_, _ = rand.Read(payload)
			r := s.do("POST", "/hello/echo", bytes.NewReader(payload), "Content-Type", "application/octet-stream")
			require.Equal(t, 200, r.status)
			assert.True(t, bytes.Equal(payload, r.body), "echoed %d bytes, sent %d", len(r.body), len(payload))
		})

		t.Run("echo of a body over the core limit", func(t *testing.T) {
			// The echo route declares no body limit: 12 MiB > the 10 MiB default.
			payload := bytes.Repeat([]byte("0123456789abcdef"), 12<<16)
			r := s.do("POST", "/hello/echo", bytes.NewReader(payload))
			require.Equal(t, 200, r.status)
			assert.Equal(t, len(payload), len(r.body))
		})

		t.Run("SSE events arrive one by one", func(t *testing.T) {
			const n, interval = 5, 150 * time.Millisecond
			resp, err := http.Get(fmt.Sprintf("%s/hello/sse?n=%d&interval_ms=%d", s.url, n, interval.Milliseconds()))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("Content-Type"), "text/event-stream")
			sc := bufio.NewScanner(resp.Body)
			var arrivals []time.Time
			var data []string
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "data:") {
					arrivals = append(arrivals, time.Now())
					data = append(data, strings.TrimSpace(strings.TrimPrefix(line, "data:")))
				}
			}
			require.Len(t, data, n)
			for i, d := range data {
				assert.Equal(t, fmt.Sprintf(`{"n":%d}`, i+1), strings.ReplaceAll(d, " ", ""))
			}
			// Buffered delivery would bring every event at the end, at once. A
			// slow machine only spreads them further apart.
			spread := arrivals[n-1].Sub(arrivals[0])
			assert.GreaterOrEqual(t, spread, (n-1)*interval/2, "events arrived together: not streamed")
		})

		t.Run("client disconnect cancels the stream", func(t *testing.T) {
			resp, err := http.Get(s.url + "/hello/sse?n=10000&interval_ms=5")
			require.NoError(t, err)
			buf := make([]byte, 64)
			_, err = resp.Body.Read(buf)
			require.NoError(t, err)
			resp.Body.Close()
			// The module keeps serving others.
			assert.Equal(t, 200, s.get("/hello/ping").status)
		})
	})
}

// TestUpgradeUnderLoad uploads a new version while clients call the module
// without pause: no request may fail.
func TestUpgradeUnderLoad(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		oldPID := s.modulePID("hello")

		var (
			stop       atomic.Bool
			ok, failed atomic.Int64
			sawV2      atomic.Bool
			wg         sync.WaitGroup
			failMu     sync.Mutex
			failures   []string
			client     = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					resp, err := client.Get(s.url + "/hello/ping")
					if err != nil {
						failed.Add(1)
						failMu.Lock()
						failures = append(failures, err.Error())
						failMu.Unlock()
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
						failMu.Lock()
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, body))
						failMu.Unlock()
						continue
					}
					ok.Add(1)
					if bytes.Contains(body, []byte(`"0.2.0"`)) {
						sawV2.Store(true)
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		r := s.uploadFile(helloV2)
		require.Equal(t, 200, r.status, "%s", r.body)
		assert.Equal(t, "Module 'hello' upgraded from 0.1.0 to 0.2.0 and running.", r.json(t)["message"])
		time.Sleep(300 * time.Millisecond)
		stop.Store(true)
		wg.Wait()

		assert.Zero(t, failed.Load(), "failed requests: %v", failures)
		assert.Greater(t, ok.Load(), int64(50))
		assert.True(t, sawV2.Load())
		assert.Equal(t, "0.2.0", s.get("/hello/ping").json(t)["version"])
		assert.False(t, processAlive(oldPID), "old process still running")
		assert.Equal(t, []string{"hello-0.2.0.chacc"}, s.dirEntries("installed"))
		assert.Equal(t, []string{"hello"}, s.dirEntries("loaded"))
		assert.Equal(t, []string{"0.2.0"}, s.dirEntries("loaded/hello"))

		// Downgrades need force.
		r = s.uploadFile(helloV1)
		assert.Equal(t, 409, r.status)
	})
}

func TestKilledModuleComesBack(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		pid := s.modulePID("hello")
		// The module runs with chacc's garbage collection target.
		environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err == nil {
			assert.Contains(t, strings.Split(string(environ), "\x00"), "GOGC="+strconv.Itoa(config.DefaultGOGC))
		} else if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		start := time.Now()
		// While it is down the prefix answers 503 with Retry-After, never hangs.
		waitFor(t, 10*time.Second, "hello to serve again", func() bool {
			resp, err := http.Get(s.url + "/hello/ping")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				assert.NotEmpty(t, resp.Header.Get("Retry-After"))
			}
			return resp.StatusCode == 200
		})
		t.Logf("kill -9 to first 200: %s", time.Since(start))
		st := s.get("/modules/hello").json(t)
		assert.Equal(t, float64(1), st["restarts"])
		assert.NotEqual(t, float64(pid), st["pid"])
		assert.Equal(t, "running", st["state"])
	})
}

func TestCrashLoopIsMarkedCrashed(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"}, "CHACC_RESTART_MAX=3", "CHACC_RESTART_BACKOFF_MIN=10ms")
	installHello(t, s)
	for i := 0; i < 3; i++ {
		var pid int
		waitFor(t, 10*time.Second, "a running hello", func() bool {
			st := s.get("/modules/hello").json(t)
			p, _ := st["pid"].(float64)
			pid = int(p)
			return st["state"] == "running" && pid > 0
		})
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		waitFor(t, 10*time.Second, "the crash to be seen", func() bool {
			p, _ := s.get("/modules/hello").json(t)["pid"].(float64)
			return int(p) != pid
		})
	}
	waitFor(t, 10*time.Second, "state crashed", func() bool { return s.get("/modules/hello").json(t)["state"] == "crashed" })
	r := s.get("/hello/ping")
	assert.Equal(t, 503, r.status)
	assert.Equal(t, "MODULE_UNAVAILABLE", r.json(t)["error_code"])
	assert.Equal(t, 503, s.get("/health/ready").status)
	assert.Contains(t, s.get("/modules/hello").json(t)["last_error"], "crashed 3 times")
	// An operator's enable brings it back.
	r = s.do("POST", "/modules/hello/enable", nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, 200, s.get("/hello/ping").status)
}

// TestEventsSurviveKills publishes 100 events and kills the subscriber at
// once, then kills the core itself: every event is recorded exactly once
// after both come back.
func TestEventsSurviveKills(t *testing.T) {
	eachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := startServer(t, b)
		installHello(t, s)
		const n = 100
		for i := 0; i < n; i++ {
			r := s.do("POST", "/hello/events", strings.NewReader(fmt.Sprintf(`{"id":"ev-%03d"}`, i)), "Content-Type", "application/json")
			require.Equal(t, 202, r.status, "%s", r.body)
		}
		require.NoError(t, syscall.Kill(s.modulePID("hello"), syscall.SIGKILL))
		waitFor(t, 30*time.Second, "all events recorded after the module restart", func() bool {
			r := s.get("/hello/events")
			return r.status == 200 && int(r.json(t)["count"].(float64)) == n
		})
		ids := s.get("/hello/events").json(t)["ids"].([]any)
		for i, id := range ids {
			assert.Equal(t, fmt.Sprintf("ev-%03d", i), id, "events out of order")
		}

		// Now the core dies hard with events in flight; the next core
		// delivers what is left.
		for i := n; i < 2*n; i++ {
			r := s.do("POST", "/hello/events", strings.NewReader(fmt.Sprintf(`{"id":"ev-%03d"}`, i)), "Content-Type", "application/json")
			require.Equal(t, 202, r.status)
		}
		modPID := s.modulePID("hello")
		s.kill()
		waitFor(t, 5*time.Second, "the orphaned module to exit", func() bool { return !processAlive(modPID) })
		s.start()
		waitFor(t, 30*time.Second, "all events recorded after the core restart", func() bool {
			r := s.get("/hello/events")
			return r.status == 200 && int(r.json(t)["count"].(float64)) == 2*n
		})
	})
}

// TestModuleCallsThroughTheCore exercises Host.Call: hello calls its own
// ping through the core, carrying the request id.
func TestModuleCallsThroughTheCore(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	installHello(t, s)
	r := s.do("GET", "/hello/relay", nil, "X-Request-ID", "relay-1")
	require.Equal(t, 200, r.status, "%s", r.body)
	body := r.json(t)
	assert.Equal(t, float64(200), body["status"])
	assert.Equal(t, map[string]any{"pong": true, "version": "0.1.0"}, body["response"])
}

// TestTamperedExecutableIsRefused changes the installed executable on disk:
// the SHA-256 pinned at install stops every later start.
func TestTamperedExecutableIsRefused(t *testing.T) {
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	installHello(t, s)
	require.Equal(t, 200, s.do("POST", "/modules/hello/disable", nil).status)
	exe := filepath.Join(s.dir, "loaded", "hello", "0.1.0", "bin", runtime.GOOS+"-"+runtime.GOARCH, "hello")
	f, err := os.OpenFile(exe, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte("tampered"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r := s.do("POST", "/modules/hello/enable", nil)
	require.Equal(t, 422, r.status, "%s", r.body)
	assert.Contains(t, r.json(t)["detail"], "checksum")
	assert.Equal(t, 404, s.get("/hello/ping").status)
	assert.Equal(t, false, s.get("/modules/hello").json(t)["is_enabled"])
}
