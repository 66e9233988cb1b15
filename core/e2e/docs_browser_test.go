package e2e

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/core/store/storetest"
)

const chromiumPath = "/usr/bin/chromium"

// TestDocsInBrowser opens /docs in headless Chromium and waits for Swagger UI
// to render the hello module's operations from /openapi.json, with every
// asset served by the core itself.
func TestDocsInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CHACC_REQUIRE_SERVICES") == "1" {
			t.Fatalf("CHACC_REQUIRE_SERVICES=1 but Chromium is missing at %s (apt-get install chromium)", chromiumPath)
		}
		t.Skipf("Chromium not found at %s: skipping the /docs browser test (apt-get install chromium)", chromiumPath)
	}
	s := startServer(t, storetest.Backend{Name: "sqlite"})
	installHello(t, s)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	// The whole browser session is bounded, so a page that never renders
	// fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	var mu sync.Mutex
	var requested, consoleErrors []string
	// Listen starts the browser; the handler only records (it must be fast).
	require.NoError(t, chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			requested = append(requested, e.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				consoleErrors = append(consoleErrors, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, e.ExceptionDetails.Text)
		}
	}))

	const ping = `.opblock-summary-path[data-path="/hello/ping"]`
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(s.url+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(ping)),
	))
	pingPath, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(ping)))
	require.NoError(t, err)
	helloTag, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`h3.opblock-tag[data-tag="Hello"]`)))
	require.NoError(t, err)
	title, err := chromedp.Run(bctx, chromedp.Title())
	require.NoError(t, err)
	body, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	require.NoError(t, err)

	t.Logf("page %q: tag %q, operation %q", title, helloTag, pingPath)
	assert.Equal(t, "chacc API", title)
	assert.Contains(t, pingPath, "/hello/ping")
	assert.Contains(t, helloTag, "Hello")
	assert.Contains(t, body, "Answers pong and the installed version.")
	assert.Contains(t, body, "/modules/{name}/enable", "the core's own routes are listed too")

	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, requested, s.url+"/openapi.json")
	assert.Contains(t, requested, s.url+"/docs/swagger-ui-bundle.js")
	for _, u := range requested {
		ok := strings.HasPrefix(u, s.url+"/") || strings.HasPrefix(u, "data:")
		assert.True(t, ok, "the page loaded %s: nothing may come from outside the core", u)
	}
	assert.Empty(t, consoleErrors, "console errors")
}
