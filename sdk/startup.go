package sdk

import (
	"log/slog"
	"runtime/debug"
	"time"
)

// startupSettle is how long after Setup a module waits before giving back
// what starting it used. The core calls Describe and Health right after
// Configure, within milliseconds; a second is well past them.
const startupSettle = time.Second

// releaseStartup gives back what starting the module used and serving it
// does not: the heap garbage of package initialization and Setup (migrations,
// for one), and the executable's pages that only start-up code touched (see
// trimExecutable). A module started and left idle otherwise keeps all of it
// resident.
func releaseStartup(log *slog.Logger) {
	time.Sleep(startupSettle)
	debug.FreeOSMemory()
	n, err := trimExecutable()
	if err != nil {
		log.Warn("releasing the executable's start-up pages failed", "error", err.Error())
		return
	}
	log.Debug("released start-up memory", "executable_bytes_advised", n)
}
