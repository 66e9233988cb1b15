package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

// TestTwoCoresOnePostgres runs a cluster of two cores on one database: a
// change made through either is followed by the other (announced with
// Postgres NOTIFY, polled as a fallback), events published
// through both are recorded once each and in order, and killing the core
// that dispatches events loses none.
func TestTwoCoresOnePostgres(t *testing.T) {
	var pg *storetest.Backend
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			pg = &b
		}
	}
	if pg == nil {
		t.Skip("a cluster needs Postgres: set DATABASE_URL")
	}
	a := startServer(t, *pg)
	// b polls only hourly: it can follow a's changes only through NOTIFY.
	b := startPeer(t, a, "CHACC_RECONCILE_INTERVAL=1h")

	installHello(t, a)
	waitFor(t, 20*time.Second, "the peer to start hello", func() bool { return b.get("/hello/ping").status == 200 })
	assert.Equal(t, "running", b.get("/modules/hello").json(t)["state"])

	publish := func(s *server, from, to int) {
		for i := from; i < to; i++ {
			r := s.do("POST", "/hello/events", strings.NewReader(fmt.Sprintf(`{"id":"ev-%03d"}`, i)), "Content-Type", "application/json")
			require.Equal(t, 202, r.status, "%s", r.body)
		}
	}
	count := func(s *server) int {
		r := s.get("/hello/events")
		if r.status != 200 {
			return -1
		}
		return int(r.json(t)["count"].(float64))
	}
	publish(a, 0, 20)
	publish(b, 20, 40)
	waitFor(t, 30*time.Second, "40 events recorded", func() bool { return count(a) == 40 })
	ids := a.get("/hello/events").json(t)["ids"].([]any)
	for i, id := range ids {
		assert.Equal(t, fmt.Sprintf("ev-%03d", i), id)
	}

	// An upgrade through b reaches a.
	require.Equal(t, 200, b.uploadFile(helloV2).status)
	waitFor(t, 20*time.Second, "a to run 0.2.0", func() bool {
		r := a.get("/hello/ping")
		return r.status == 200 && r.json(t)["version"] == "0.2.0"
	})

	// Disable through a: b stops serving.
	require.Equal(t, 200, a.do("POST", "/modules/hello/disable", nil).status)
	waitFor(t, 20*time.Second, "b to unmount hello", func() bool { return b.get("/hello/ping").status == 404 })
	require.Equal(t, 200, b.do("POST", "/modules/hello/enable", nil).status)
	waitFor(t, 20*time.Second, "a to serve hello again", func() bool { return a.get("/hello/ping").status == 200 })

	// a holds the dispatch lease (its hello started first). Kill it: b takes
	// the lease over and delivers what is published meanwhile.
	a.kill()
	publish(b, 40, 60)
	waitFor(t, 30*time.Second, "60 events recorded after a died", func() bool { return count(b) == 60 })

	// Uninstall through b; a, restarted, removes its copy.
	a.start()
	require.Equal(t, 200, b.do("DELETE", "/modules/hello/uninstall", nil).status)
	waitFor(t, 20*time.Second, "a to drop hello", func() bool { return a.get("/modules/hello").status == 404 && a.get("/hello/ping").status == 404 })
	waitFor(t, 5*time.Second, "a's files to go", func() bool { return len(a.dirEntries("loaded")) == 0 && len(a.dirEntries("installed")) == 0 })
}
