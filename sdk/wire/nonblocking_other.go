//go:build !linux || race || msan || asan

package wire

import "net"

// The raw reads and writes are Linux only, and not in race, msan or asan
// builds (nonblocking_linux.go): here the connections are left as they are.

const rawSyscalls = false

// NonblockingConn returns c (nonblocking_linux.go).
func NonblockingConn(c net.Conn) net.Conn { return c }

// NonblockingListener returns ln (nonblocking_linux.go).
func NonblockingListener(ln net.Listener) net.Listener { return ln }
