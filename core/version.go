package core

// Version is the core's version; release builds set it with
// -ldflags "-X github.com/chacc/chacc/core.Version=...".
var Version = "0.1.0"
