package sdk

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/chacc/chacc/sdk/wire"
)

// Serve runs the module under the core. It blocks until the core stops the
// module, then exits the process; it never returns. Run by hand, outside the
// core, the program prints a notice and exits with status 1.
//
// The module also exits when its parent process is gone, so a module never
// outlives a core that was killed.
func Serve(m Module) {
	if os.Getenv(wire.Handshake.MagicCookieKey) != wire.Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "This is a chacc module: install it into a chacc core (POST /modules/), do not run it directly.")
		os.Exit(1)
	}
	go exitWithParent(os.Getppid())
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		Plugins: plugin.PluginSet{wire.PluginName: &wire.Plugin{
			NewServer: func(broker *plugin.GRPCBroker) wire.ModuleServer {
				srv := NewServer(m, func(id uint32) (grpc.ClientConnInterface, error) {
					return broker.DialWithOptions(id, wire.DialOptions()...)
				})
				srv.settled = releaseStartup
				return srv
			},
		}},
		// go-plugin's own chatter is debug-level; only its warnings matter.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "module", Level: hclog.Warn, Output: os.Stderr}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(wire.ServerOptions(opts...)...)
		},
	})
	os.Exit(0)
}

// exitWithParent ends the process when it is re-parented, i.e. the core died
// without stopping it. The core also asks the kernel for SIGKILL on its death
// (Pdeathsig); this is the portable backstop.
func exitWithParent(ppid int) {
	for range time.Tick(250 * time.Millisecond) {
		if os.Getppid() != ppid {
			fmt.Fprintln(os.Stderr, "chacc core is gone; module exiting")
			os.Exit(2)
		}
	}
}
