// Command auth is the chacc authentication module; the module itself is
// package authapp. module_meta.json beside this file is the manifest packed
// with the binary.
//
// The core runs the binary; run by hand, it prints a notice and exits.
package main

import (
	"github.com/chacc/chacc/modules/auth/authapp"
	"github.com/chacc/chacc/sdk"
)

func main() {
	sdk.Serve(authapp.Module())
}
