package wire

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Socket reads and writes without the scheduler's system call hand-off.
//
// Go makes every read and write on a socket a system call that may block:
// the goroutine's P is marked as in a system call, and sysmon, the runtime's
// monitor thread, gives the P to another thread when a call is still going
// at its next tick (20 µs while it keeps finding such calls). The sockets
// the net package makes are non-blocking, so these calls never wait; but on
// a paravirtualised VM a write to a loopback socket often lasts that long
// (the kernel delivers to the reader within the call), and in a process on
// one P, as chacc's core and modules are by default, each hand-off costs
// two thread switches and keeps sysmon waking every 20 µs. Under load a
// module's sysmon took 17% of its CPU (perf).
//
// A nonblockingConn reads and writes with RawSyscall inside the
// connection's syscall.RawConn: the runtime's poller still parks the
// goroutine when the socket is not ready, and deadlines and Close work as
// with the net package's own Read and Write, whose errors it reproduces.

// NonblockingConn returns c reading and writing without the hand-off, or c
// itself when it has no file descriptor (a net.Pipe, a TLS connection).
func NonblockingConn(c net.Conn) net.Conn {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return c
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return c
	}
	return &nonblockingConn{Conn: c, rc: rc}
}

// NonblockingListener returns ln, its connections wrapped by
// [NonblockingConn].
func NonblockingListener(ln net.Listener) net.Listener { return nonblockingListener{ln} }

type nonblockingListener struct{ net.Listener }

func (l nonblockingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NonblockingConn(c), nil
}

type nonblockingConn struct {
	net.Conn // a *net.TCPConn or *net.UnixConn
	rc       syscall.RawConn
}

func (c *nonblockingConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // the poller waits for the socket
			default:
				errno = e
				return true
			}
		}
	})
	switch {
	case err != nil: // closed, or the deadline passed
	case errno != 0:
		err = os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	default:
		return n, nil
	}
	return 0, c.opError("read", err)
}

func (c *nonblockingConn) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// opError wraps err as the net package does for its connections' errors.
func (c *nonblockingConn) opError(op string, err error) error {
	la := c.LocalAddr()
	return &net.OpError{Op: op, Net: la.Network(), Source: la, Addr: c.RemoteAddr(), Err: err}
}

// ReadFrom keeps the connection's own (sendfile, splice): net/http's
// response writer uses it for files.
func (c *nonblockingConn) ReadFrom(r io.Reader) (int64, error) {
	return c.Conn.(io.ReaderFrom).ReadFrom(r)
}

// CloseWrite and CloseRead are the connection's own: net/http half-closes
// a connection before it closes it.
func (c *nonblockingConn) CloseWrite() error {
	return c.Conn.(interface{ CloseWrite() error }).CloseWrite()
}

func (c *nonblockingConn) CloseRead() error {
	return c.Conn.(interface{ CloseRead() error }).CloseRead()
}
