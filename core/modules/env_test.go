package modules

import (
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestModuleEnvironment(t *testing.T) {
	m := &Manager{cfg: Config{
		Mode: "production", GoMaxProcs: 1, GOGC: 400,
		Environ: []string{"PATH=/bin", "DATABASE_URL=postgres://secret", "GOMAXPROCS=8", "GOGC=50", "HELLO_GREETING=hi", "TZ=UTC"},
	}}
	env := m.envFor("hello", map[string]string{"HELLO_GREETING": "hi"})
	assert.ElementsMatch(t, []string{
		"PATH=/bin", "TZ=UTC", "HELLO_GREETING=hi", "GOMAXPROCS=1", "GOGC=400",
		"CHACC_MODE=production", "CHACC_MODULE_NAME=hello",
	}, env, "the core's secrets and its own GOMAXPROCS and GOGC stay out")

	m.cfg.GoMaxProcs, m.cfg.GOGC = 0, 0
	env = m.envFor("hello", nil)
	for _, kv := range env {
		assert.NotRegexp(t, "^(GOMAXPROCS|GOGC)=", kv, "Go's defaults")
	}
}

func TestWithExtraProc(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	inside := make(chan int, 2)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			withExtraProc(func() {
				inside <- runtime.GOMAXPROCS(0)
				<-release
			})
		}()
	}
	assert.Equal(t, 2, <-inside)
	assert.Equal(t, 2, <-inside, "two jobs at once share one extra CPU")
	close(release)
	wg.Wait()
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "restored once both are done")
}
