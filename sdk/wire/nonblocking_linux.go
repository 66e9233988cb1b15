//go:build linux && !race && !msan && !asan

package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
// While a call runs, its goroutine keeps the P, so a call copies at most
// maxRawIO bytes; the socket must stay non-blocking (nothing may call File
// on the connection it wraps, which would make it blocking).
//
// Not in race, msan or asan builds (nonblocking_other.go): the net
// package's calls tell the race detector that a write happens before the
// read that sees its bytes, and raw calls would not.

const rawSyscalls = true

// maxRawIO is the most one raw call reads or writes.
const maxRawIO = 256 << 10

// NonblockingConn returns c reading and writing without the hand-off when
// c is a stream socket (TCP, or a Unix socket of type "unix"), otherwise c
// itself (a net.Pipe, a TLS connection, a datagram socket).
func NonblockingConn(c net.Conn) net.Conn {
	var network string
	unix := false
	switch c.(type) {
	case *net.TCPConn: // always a stream
		network = "tcp"
	case *net.UnixConn: // a stream, a datagram or a packet socket
		network, unix = "unix", true
	default:
		return c
	}
	if a := c.LocalAddr(); a != nil {
		network = a.Network()
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return c
	}
	if unix {
		// One system call per connection, for the Unix sockets only: a
		// client's TCP connection, perhaps one per request, pays none.
		typ := -1
		_ = rc.Control(func(fd uintptr) {
			if t, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE); err == nil {
				typ = t
			}
		})
		if typ != syscall.SOCK_STREAM {
			return c
		}
	}
	nc := &nonblockingConn{Conn: c, rc: rc, network: network}
	nc.readFn, nc.writeFn = nc.read, nc.write
	return nc
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
	network  string

	// The calls' state, so that the callbacks (made once) allocate
	// nothing; one read and one write at a time.
	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbufs   [][]byte // what is left to write
	wone    [1][]byte
	wn      int
	werr    error
	iov     [8]syscall.Iovec
	writeFn func(uintptr) bool
}

func (c *nonblockingConn) read(fd uintptr) bool {
	n := min(len(c.rbuf), maxRawIO)
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(n))
		switch e {
		case 0:
			c.rn = int(r)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the poller waits for the socket
		default:
			c.rerrno = e
			return true
		}
	}
}

func (c *nonblockingConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil: // closed, or past the deadline
		err = rawConnError(err)
	case errno != 0:
		err = os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	default:
		return n, nil
	}
	return 0, c.opError("read", err)
}

// write writes c.wbufs with writev(2), one buffer or several.
func (c *nonblockingConn) write(fd uintptr) bool {
	for len(c.wbufs) > 0 {
		if len(c.wbufs[0]) == 0 {
			c.wbufs = c.wbufs[1:]
			continue
		}
		n, total := 0, 0
		for _, b := range c.wbufs {
			if n == len(c.iov) || total == maxRawIO {
				break
			}
			if len(b) == 0 {
				continue
			}
			l := min(len(b), maxRawIO-total)
			c.iov[n].Base = &b[0]
			c.iov[n].SetLen(l)
			n++
			total += l
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&c.iov[0])), uintptr(n))
		c.iov = [len(c.iov)]syscall.Iovec{}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return false
		case e != 0:
			c.werr = os.NewSyscallError("write", e)
			return true
		case r == 0:
			c.werr = io.ErrUnexpectedEOF
			return true
		}
		c.wn += int(r)
		for r > 0 {
			if l := uintptr(len(c.wbufs[0])); r < l {
				c.wbufs[0] = c.wbufs[0][r:]
				break
			} else {
				r -= l
				c.wbufs = c.wbufs[1:]
			}
		}
	}
	return true
}

func (c *nonblockingConn) Write(p []byte) (int, error) {
	c.wone[0] = p
	n, err := c.writeVectors(c.wone[:])
	c.wone[0] = nil
	return n, err
}

// writeVectors writes bufs, as net.Buffers does with writev(2) (writeFrame:
// a frame's head and body, from where they are). bufs is consumed.
func (c *nonblockingConn) writeVectors(bufs [][]byte) (int, error) {
	c.wmu.Lock()
	c.wbufs, c.wn, c.werr = bufs, 0, nil
	err := c.rc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wbufs = nil
	c.wmu.Unlock()
	if err != nil {
		err = rawConnError(err)
	} else {
		err = werr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// rawConnError is the cause of an error from RawConn.Read or Write, which
// come wrapped as *net.OpError ("raw-read").
func rawConnError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// opError wraps err as the net package does for its connections' errors.
func (c *nonblockingConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// ReadFrom is the connection's own where it has one (a TCP connection:
// sendfile, splice), as net/http's response writer uses it for files.
func (c *nonblockingConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

// CloseWrite and CloseRead are the connection's own: net/http half-closes
// a connection before it closes it.
func (c *nonblockingConn) CloseWrite() error {
	return c.Conn.(interface{ CloseWrite() error }).CloseWrite()
}

func (c *nonblockingConn) CloseRead() error {
	return c.Conn.(interface{ CloseRead() error }).CloseRead()
}
