// Command hello is the example chacc module, and the template for writing
// one. The module itself lives in package helloapp (routes, handlers,
// storage, tests); this file only hands it to the SDK, and module_meta.json
// beside it is the manifest packed with the binary. A module needs no more:
// keeping the code in a package of its own lets tests, and anything else,
// mount the same handler without the core.
//
// The core runs the binary; run by hand, it prints a notice and exits.
package main

import (
	"github.com/chacc/chacc/sdk"
	"github.com/chacc/chacc/sdk/examples/hello/helloapp"
)

func main() {
	sdk.Serve(helloapp.Module())
}
