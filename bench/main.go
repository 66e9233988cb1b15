// Command bench measures what running a module out of process costs: the
// hello example module served through the chacc core, against the same
// handler mounted in-process on an Echo server and against the same handler
// as a plain HTTP server behind httputil.ReverseProxy ("modules as
// microservices"). It builds the core and the module from this checkout,
// runs every contender as a process of its own on loopback, interleaves them
// round by round, prints one table and writes bench/results.json.
//
//	make bench                 # about 8-9 minutes
//	BENCH_QUICK=1 make bench   # about 2 minutes, fewer and shorter rounds
//	BENCH_ONLY=a,h make bench  # only those figures (a b d e f g h i j)
//
// DATABASE_URL (postgres://...) adds the Postgres rows: a fresh database is
// created on that server and dropped afterwards. BENCHMARKS.md explains each
// figure and its target.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	do := run // the whole suite, unless a subcommand is named
	if len(os.Args) > 1 {
		switch cmd := os.Args[1]; {
		case strings.HasPrefix(cmd, "serve-"):
			do = func() error { return serveMain(os.Args[1:]) }
		case cmd == "load":
			// bench load URL SECONDS [PATH...]: the closed loop alone, to
			// profile a server under it.
			do = func() error { return loadMain(os.Args[2:]) }
		case cmd == "open":
			// bench open URL RATE SECONDS [PATH...]: the open loop alone.
			do = func() error { return openMain(os.Args[2:]) }
		}
	}
	if err := do(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
