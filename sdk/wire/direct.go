package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// The direct path of the HTTP bridge. A gRPC stream per request costs the
// core and the module a stream set-up, header and trailer frames, and four
// goroutine hand-offs (each side's reader and writer goroutines) per
// message; on a loaded two-core machine that was most of the price of a
// request. The direct path keeps the protocol (the same HTTPRequestFrame
// and HTTPResponseFrame messages, in the same order) but carries them over
// a pool of Unix socket connections, one exchange at a time per connection,
// each frame a 4-byte big-endian length and the message: the goroutine that
// serves the client writes the request and reads the answer itself, and the
// module's handler writes its answer itself.
//
// Cancellation is closing the connection: the module's reader sees it and
// cancels the handler's context. A connection goes back to the pool only
// after an exchange that ended cleanly both ways (the whole request body
// sent, the last response frame received); anything else closes it.

// maxFrameBytes bounds one frame on the direct socket, as MaxMessageBytes
// bounds one gRPC message.
const maxFrameBytes = MaxMessageBytes

// maxIdleConns is how many idle connections a [DirectClient] keeps.
const maxIdleConns = 256

// frameConn is a connection carrying length-prefixed frames.
type frameConn struct {
	c    net.Conn
	br   *bufio.Reader
	wbuf []byte // one writer at a time: see the callers
}

func newFrameConn(c net.Conn) *frameConn {
	return &frameConn{c: c, br: bufio.NewReaderSize(c, ChunkSize+4<<10)}
}

// readFrame reads one frame into m. A connection closed between frames is
// io.EOF; closed inside one, io.ErrUnexpectedEOF.
func (fc *frameConn) readFrame(m proto.Message) error {
	hdr, err := fc.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n > maxFrameBytes {
		return fmt.Errorf("wire: frame of %d bytes is over the limit of %d", n, maxFrameBytes)
	}
	_, _ = fc.br.Discard(4)
	if n <= fc.br.Size() {
		b, err := fc.br.Peek(n)
		if err != nil {
			return unexpected(err)
		}
		err = proto.Unmarshal(b, m) // copies what it keeps
		_, _ = fc.br.Discard(n)
		return err
	}
	if n > bigChunkSize+4<<10 {
		b := make([]byte, n)
		if _, err := io.ReadFull(fc.br, b); err != nil {
			return unexpected(err)
		}
		return proto.Unmarshal(b, m)
	}
	bp := bigFramePool.Get().(*[]byte)
	defer bigFramePool.Put(bp)
	b := (*bp)[:n]
	if _, err := io.ReadFull(fc.br, b); err != nil {
		return unexpected(err)
	}
	return proto.Unmarshal(b, m) // copies what it keeps
}

// bigFramePool holds the read buffers of frames bigger than a connection's
// reader: a big request chunk with its framing.
var bigFramePool = sync.Pool{New: func() any { b := make([]byte, bigChunkSize+4<<10); return &b }}

// decodeFrame decodes one whole frame (length and message) held in b.
func decodeFrame(b []byte, m proto.Message) error {
	if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return errors.New("wire: bad frame")
	}
	return proto.Unmarshal(b[4:], m)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeFrame writes m as one frame, in one write.
func (fc *frameConn) writeFrame(m proto.Message) error {
	if err := fc.encode(m); err != nil {
		return err
	}
	_, err := fc.c.Write(fc.wbuf)
	if cap(fc.wbuf) > 2*ChunkSize {
		fc.wbuf = nil // do not keep a large frame's buffer
	}
	return err
}

// encode puts m, as one frame, in fc.wbuf.
func (fc *frameConn) encode(m proto.Message) error {
	b, err := proto.MarshalOptions{}.MarshalAppend(append(fc.wbuf[:0], 0, 0, 0, 0), m)
	if err != nil {
		return err
	}
	if len(b)-4 > maxFrameBytes {
		return fmt.Errorf("wire: frame of %d bytes is over the limit of %d", len(b)-4, maxFrameBytes)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	fc.wbuf = b
	return nil
}

// DirectClient is the calling side of the direct path: it forwards HTTP
// exchanges to a module over the module's Unix socket, keeping idle
// connections for the next ones. It is safe for concurrent use.
type DirectClient struct {
	path   string
	dialer net.Dialer

	mu     sync.Mutex
	idle   []*frameConn
	closed bool
}

// NewDirectClient returns a client of the module serving the direct path
// at the Unix socket path. It connects on first use.
func NewDirectClient(path string) *DirectClient {
	return &DirectClient{path: path}
}

// Warm opens one connection ahead of the first request.
func (d *DirectClient) Warm(ctx context.Context) error {
	fc, err := d.get(ctx)
	if err != nil {
		return err
	}
	d.put(fc)
	return nil
}

// Close closes the idle connections; those in use close when their exchange
// ends. Forward fails after Close.
func (d *DirectClient) Close() error {
	d.mu.Lock()
	idle := d.idle
	d.idle, d.closed = nil, true
	d.mu.Unlock()
	for _, fc := range idle {
		_ = fc.c.Close()
	}
	return nil
}

var errClientClosed = errors.New("wire: direct client closed")

func (d *DirectClient) get(ctx context.Context) (*frameConn, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errClientClosed
	}
	if n := len(d.idle); n > 0 {
		fc := d.idle[n-1]
		d.idle[n-1] = nil
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return fc, nil
	}
	d.mu.Unlock()
	c, err := d.dialer.DialContext(ctx, "unix", d.path)
	if err != nil {
		return nil, err
	}
	return newFrameConn(c), nil
}

func (d *DirectClient) put(fc *frameConn) {
	d.mu.Lock()
	if d.closed || len(d.idle) >= maxIdleConns {
		d.mu.Unlock()
		_ = fc.c.Close()
		return
	}
	d.idle = append(d.idle, fc)
	d.mu.Unlock()
}

// Forward carries one HTTP exchange to the module and writes the module's
// answer to w, exactly as [Forward] does over a gRPC stream: flushed after
// every frame, full duplex, cancelled with ctx, one frame each way for a
// request whose body fits in one chunk. Errors are *[ForwardError].
func (d *DirectClient) Forward(ctx context.Context, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
	fc, err := d.get(ctx)
	if err != nil {
		return &ForwardError{Err: err}
	}
	// Closing the connection is how a cancelled client cancels the module's
	// handler; it also unblocks this goroutine's reads and writes.
	var cancelled atomic.Bool
	stopWatch := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		_ = fc.c.Close()
	})
	reusable := false
	defer func() {
		if stopWatch() && reusable {
			d.put(fc)
		} else {
			_ = fc.c.Close()
		}
	}()
	ctxErr := func(err error) error {
		if cancelled.Load() {
			return ctx.Err()
		}
		return err
	}

	bufp := chunkPool.Get().(*[]byte)
	buf := *bufp
	first := &modulev1.HTTPRequestFrame{Head: head, End: true}
	if body != nil && head.GetContentLength() != 0 {
		n, rerr := body.Read(buf)
		first.Body = buf[:n]
		switch {
		case rerr == io.EOF:
		case rerr != nil:
			chunkPool.Put(bufp)
			return &ForwardError{Body: true, Err: rerr}
		case int64(n) == head.GetContentLength():
		default:
			first.End = false
		}
	}
	if err := fc.writeFrame(first); err != nil {
		chunkPool.Put(bufp)
		return &ForwardError{Err: ctxErr(err)}
	}

	// The rest of the body goes up while the answer comes down: a module may
	// answer before it has read everything (full duplex).
	var (
		bodyErr  error
		bodySent bool
		bodyDone = make(chan struct{})
	)
	if first.End {
		chunkPool.Put(bufp)
		bodySent = true
		close(bodyDone)
	} else {
		// The rest of a body bigger than a chunk is likely big: it goes in
		// bigger frames.
		chunkPool.Put(bufp)
		bufp = bigChunkPool.Get().(*[]byte)
		buf = *bufp
		go func() {
			defer close(bodyDone)
			defer bigChunkPool.Put(bufp)
			for {
				n, rerr := body.Read(buf)
				if n > 0 {
					if err := fc.writeFrame(&modulev1.HTTPRequestFrame{Body: buf[:n]}); err != nil {
						return // the module is gone or has answered; the reader reports it
					}
				}
				if rerr == io.EOF {
					bodySent = fc.writeFrame(&modulev1.HTTPRequestFrame{End: true}) == nil
					return
				}
				if rerr != nil {
					bodyErr = rerr
					_ = fc.c.Close() // cancels the handler
					return
				}
			}
		}()
	}

	started := false
	flusher, _ := w.(http.Flusher)
	// stopBody ends the upload once the module no longer wants it: the
	// answer is flushed first, then a blocked read of the client's body is
	// cut short and the connection closed under a blocked write.
	stopBody := func() {
		select {
		case <-bodyDone:
			return
		default:
		}
		if flusher != nil && started {
			flusher.Flush()
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		_ = fc.c.Close()
		<-bodyDone
	}
	fail := func(err error) error {
		stopBody()
		if bodyErr != nil {
			return &ForwardError{Started: started, Body: true, Err: bodyErr}
		}
		return &ForwardError{Started: started, Err: ctxErr(err)}
	}
	var frame modulev1.HTTPResponseFrame
	for {
		if err := fc.readFrame(&frame); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
		if !started {
			h := frame.GetHead()
			if h == nil {
				return fail(errors.New("first response frame has no head"))
			}
			writeHead(w, h, bodyDone)
			started = true
		}
		if len(frame.GetBody()) > 0 {
			if _, err := w.Write(frame.GetBody()); err != nil {
				return fail(err) // the client went away
			}
		}
		if frame.GetEnd() {
			break
		}
		// Flushed unless the next frame is already arriving: the client gets
		// every frame as soon as the module sends it, in fewer writes.
		if flusher != nil && fc.br.Buffered() == 0 {
			flusher.Flush()
		}
	}
	select {
	case <-bodyDone:
		reusable = bodySent
	default:
	}
	stopBody()
	return nil
}

// ServeDirect serves the direct path on the connections ln accepts, with h,
// until ln is closed; it returns the error that ended Accept. The handler
// sees requests as [NewHTTPServer]'s does.
func ServeDirect(ln net.Listener, h http.Handler, log *slog.Logger) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveDirectConn(c, h, log)
	}
}

// serveDirectConn reads frames from one connection: a head starts an
// exchange, whose handler runs in a goroutine of its own, so that the
// reader keeps reading and notices the connection closing (the core's
// cancellation) while the handler runs. Body frames go to the handler as it
// reads them.
func serveDirectConn(c net.Conn, h http.Handler, log *slog.Logger) {
	fc := newFrameConn(c)
	defer c.Close()
	var cur *exchange // the exchange whose request is still arriving or running
	defer func() {
		if cur != nil {
			cur.connGone(io.ErrUnexpectedEOF)
		}
	}()
	for {
		frame := new(modulev1.HTTPRequestFrame)
		if err := fc.readFrame(frame); err != nil {
			if err != io.EOF && cur != nil {
				log.Debug("direct connection failed", "error", err)
			}
			return
		}
		if cur != nil && !cur.bodyEnded {
			cur.deliver(frame)
			continue
		}
		if cur != nil {
			// The previous exchange is over on the core's side (it sends a
			// new head only after the last response frame), but its handler
			// may still be returning: one writer at a time.
			<-cur.done
		}
		if frame.GetHead() == nil {
			log.Debug("direct connection: frame without head between exchanges")
			return
		}
		cur = newExchange(fc, frame)
		go cur.run(h, log)
	}
}

// bodyBudget is how many bytes of request body a direct connection's reader
// queues for a handler that has not read them yet. Below it the reader keeps
// reading, and so sees the core close the connection (a cancelled request)
// even while the handler ignores the body; above it the reader waits, which
// pushes back on the core and, through it, on the client.
const bodyBudget = 1 << 20

// exchange is one request served on a direct connection.
type exchange struct {
	fc        *frameConn
	first     *modulev1.HTTPRequestFrame
	ctx       context.Context
	cancel    context.CancelFunc
	bodyEnded bool          // the reader has seen end, or the connection went (reader's own)
	done      chan struct{} // closed when the handler has returned

	mu     sync.Mutex
	queue  []*modulev1.HTTPRequestFrame // body frames the handler has not read
	queued int                          // their bytes
	ended  bool                         // no frame follows those in queue
	err    error                        // why the body ended early
	ready  chan struct{}                // signals Recv: a frame or the end arrived
	space  chan struct{}                // signals deliver: the handler took a frame
}

func newExchange(fc *frameConn, first *modulev1.HTTPRequestFrame) *exchange {
	ctx, cancel := context.WithCancel(context.Background())
	x := &exchange{fc: fc, first: first, ctx: ctx, cancel: cancel, bodyEnded: first.GetEnd(), done: make(chan struct{})}
	x.ended = x.bodyEnded
	if !x.bodyEnded {
		x.ready = make(chan struct{}, 1)
		x.space = make(chan struct{}, 1)
	}
	return x
}

func (x *exchange) run(h http.Handler, log *slog.Logger) {
	defer close(x.done)
	defer x.cancel()
	if err := serveExchange(x.ctx, h, log, x.first, x, x); err != nil {
		// Cut the connection: the core takes a close before the last frame
		// as a broken answer, and never reuses the connection.
		_ = x.fc.c.Close()
	}
}

// signal wakes the goroutine waiting on c, if any.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver queues a body frame for the handler, waiting while bodyBudget
// bytes are queued already; it drops the frame once the handler has
// returned without reading the whole body.
func (x *exchange) deliver(frame *modulev1.HTTPRequestFrame) {
	if frame.GetEnd() {
		x.bodyEnded = true
	}
	for {
		x.mu.Lock()
		if x.queued < bodyBudget {
			x.queue = append(x.queue, frame)
			x.queued += len(frame.GetBody())
			x.ended = x.bodyEnded
			x.mu.Unlock()
			signal(x.ready)
			return
		}
		x.mu.Unlock()
		select {
		case <-x.space:
		case <-x.done:
			return
		}
	}
}

// connGone cancels the exchange: the core closed the connection.
func (x *exchange) connGone(err error) {
	if !x.bodyEnded {
		x.bodyEnded = true
		x.mu.Lock()
		x.ended, x.err = true, err
		x.mu.Unlock()
		signal(x.ready)
	}
	x.cancel()
}

// Recv returns the next body frame (frameReceiver).
func (x *exchange) Recv() (*modulev1.HTTPRequestFrame, error) {
	for {
		x.mu.Lock()
		if len(x.queue) > 0 {
			frame := x.queue[0]
			x.queue[0] = nil
			x.queue = x.queue[1:]
			x.queued -= len(frame.GetBody())
			x.mu.Unlock()
			signal(x.space)
			return frame, nil
		}
		ended, err := x.ended, x.err
		x.mu.Unlock()
		if ended {
			if err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		<-x.ready
	}
}

// Send writes a response frame (frameSender). Only the handler's goroutine
// writes to the connection.
func (x *exchange) Send(frame *modulev1.HTTPResponseFrame) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	return x.fc.writeFrame(frame)
}
