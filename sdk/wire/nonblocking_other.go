//go:build !linux

package wire

import "net"

// NonblockingConn returns c: the raw reads and writes are Linux only
// (nonblocking_linux.go).
func NonblockingConn(c net.Conn) net.Conn { return c }

// NonblockingListener returns ln (nonblocking_linux.go).
func NonblockingListener(ln net.Listener) net.Listener { return ln }
