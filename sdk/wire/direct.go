package wire

import (
	"bufio"
	"bytes"
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

	"google.golang.org/protobuf/encoding/protowire"
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
	vec  [2][]byte

	// What the last readResponse left in use: bytes of br to discard and a
	// big frame's buffer, released by the next read.
	held int
	big  *[]byte
}

func newFrameConn(c net.Conn) *frameConn {
	return &frameConn{c: c, br: bufio.NewReaderSize(c, ChunkSize+4<<10)}
}

// nextFrame returns the next frame's message bytes: in br's buffer when they
// fit (valid until the next read), otherwise in a pooled buffer that fc
// holds until the next read. A connection closed between frames is io.EOF;
// closed inside one, io.ErrUnexpectedEOF.
func (fc *frameConn) nextFrame() ([]byte, error) {
	fc.release()
	hdr, err := fc.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n > maxFrameBytes {
		return nil, fmt.Errorf("wire: frame of %d bytes is over the limit of %d", n, maxFrameBytes)
	}
	_, _ = fc.br.Discard(4)
	if n <= fc.br.Size() {
		b, err := fc.br.Peek(n)
		if err != nil {
			return nil, unexpected(err)
		}
		fc.held = n
		return b, nil
	}
	var b []byte
	if n <= bigChunkSize+4<<10 {
		fc.big = bigFramePool.Get().(*[]byte)
		b = (*fc.big)[:n]
	} else {
		b = make([]byte, n)
	}
	if _, err := io.ReadFull(fc.br, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// release lets go of what the last readResponse left in use.
func (fc *frameConn) release() {
	if fc.held > 0 {
		_, _ = fc.br.Discard(fc.held)
		fc.held = 0
	}
	if fc.big != nil {
		bigFramePool.Put(fc.big)
		fc.big = nil
	}
}

// arriving tells whether bytes of a next frame are already buffered.
func (fc *frameConn) arriving() bool { return fc.br.Buffered() > fc.held }

// readResponse reads one response frame into f without copying its body:
// f.Body is valid until the next read on fc (the core writes it to the
// client first).
func (fc *frameConn) readResponse(f *modulev1.HTTPResponseFrame) error {
	b, err := fc.nextFrame()
	if err != nil {
		return err
	}
	head, body, end, err := splitFrame(b)
	if err != nil {
		return err
	}
	f.Head, f.Body, f.End = nil, body, end
	if head != nil {
		f.Head, err = decodeResponseHead(head)
	}
	return err
}

// readRequest reads one request frame into f, whose body is left with the
// decoder's copy unless pooled is set. Then it is held in a pooled buffer,
// returned in buf, which the caller puts back once the body is read: the
// frame's own buffer when it was read into one, or else a copy. A module
// reading a large upload so allocates nothing per frame: it allocated a
// megabyte per megabyte before, and the garbage collector ran every few
// uploads.
func (fc *frameConn) readRequest(f *modulev1.HTTPRequestFrame, pooled bool) (buf bodyBuf, err error) {
	b, err := fc.nextFrame()
	if err != nil {
		return bodyBuf{}, err
	}
	if !pooled {
		return bodyBuf{}, decodeRequestFrame(b, f)
	}
	head, body, end, err := splitFrame(b)
	if err != nil {
		return bodyBuf{}, err
	}
	f.Head, f.Body, f.End = nil, nil, end
	if head != nil {
		if f.Head, err = decodeRequestHead(head); err != nil {
			return bodyBuf{}, err
		}
	}
	switch {
	case len(body) == 0:
	case fc.big != nil:
		// The frame is in a buffer of its own: the body stays there.
		buf = bodyBuf{p: fc.big, pool: &bigFramePool}
		fc.big = nil
		f.Body = body
	case len(body) <= ChunkSize:
		buf = bodyBuf{p: chunkPool.Get().(*[]byte), pool: &chunkPool}
		f.Body = (*buf.p)[:copy(*buf.p, body)]
	case len(b) > fc.br.Size():
		// Over any pooled buffer: read into one of its own (nextFrame).
		f.Body = body
	default:
		f.Body = bytes.Clone(body)
	}
	return buf, nil
}

// bodyBuf is a pooled buffer holding a request frame's body.
type bodyBuf struct {
	p    *[]byte
	pool *sync.Pool
}

// put gives the buffer back to its pool; the body in it is then gone.
func (b bodyBuf) put() {
	if b.p != nil {
		b.pool.Put(b.p)
	}
}

// splitFrame parses the message of a request or response frame, which both
// have the head as field 1, the body as 2 and the end flag as 3. head is nil
// when absent; body points into b. Unknown fields are skipped. A field that
// occurs twice keeps its last value, where protobuf would merge two heads:
// a frame carries one (frameConn.encodeSplit writes it once).
func splitFrame(b []byte) (head, body []byte, end bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, false, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, false, protowire.ParseError(n)
			}
			head, b = v, b[n:]
			if head == nil {
				head = []byte{}
			}
		case num == bodyField && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, false, protowire.ParseError(n)
			}
			body, b = v, b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, nil, false, protowire.ParseError(n)
			}
			end, b = v != 0, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, nil, false, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return head, body, end, nil
}

// bigFramePool holds the read buffers of frames bigger than a connection's
// reader: a big request chunk with its framing.
var bigFramePool = sync.Pool{New: func() any { b := make([]byte, bigChunkSize+4<<10); return &b }}

// decodeFrame decodes one whole frame (length and message) held in b.
func decodeFrame(b []byte, m proto.Message) error {
	if len(b) < 4 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return errors.New("wire: bad frame")
	}
	switch f := m.(type) {
	case *modulev1.HTTPRequestFrame:
		return decodeRequestFrame(b[4:], f)
	case *modulev1.HTTPResponseFrame:
		return decodeResponseFrame(b[4:], f)
	}
	return proto.Unmarshal(b[4:], m)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// bodyField is the number of the body field of both frame messages.
const bodyField = 2

// copyBodyBelow is the body size under which a frame is copied into one
// buffer and written with write(2); a bigger body is written from where it
// is, with writev(2).
const copyBodyBelow = 8 << 10

// vectorWriter writes several buffers in one call (writev), as net.Buffers
// does on the net package's own connections (a nonblockingConn).
type vectorWriter interface {
	writeVectors(bufs [][]byte) (int, error)
}

// writeFrame writes m as one frame. The body of a request or response frame
// is encoded last and not copied when it is big.
func (fc *frameConn) writeFrame(m proto.Message) error {
	head, body, err := fc.encodeSplit(m)
	if err != nil {
		return err
	}
	if len(body) < copyBodyBelow {
		fc.wbuf = append(head, body...)
		_, err = fc.c.Write(fc.wbuf)
	} else if vw, ok := fc.c.(vectorWriter); ok {
		fc.vec = [2][]byte{head, body}
		_, err = vw.writeVectors(fc.vec[:])
		fc.vec = [2][]byte{}
	} else {
		bufs := net.Buffers{head, body}
		_, err = bufs.WriteTo(fc.c)
	}
	if cap(fc.wbuf) > 2*ChunkSize {
		fc.wbuf = nil // do not keep a large frame's buffer
	}
	return err
}

// encode puts m, as one whole frame, in fc.wbuf.
func (fc *frameConn) encode(m proto.Message) error {
	head, body, err := fc.encodeSplit(m)
	if err != nil {
		return err
	}
	fc.wbuf = append(head, body...)
	return nil
}

// encodeSplit encodes m as a frame in fc.wbuf but for the body of a request
// or response frame, which follows: the frame is head and then body.
func (fc *frameConn) encodeSplit(m proto.Message) (head, body []byte, err error) {
	head, body, end, ok := appendFrameHead(append(fc.wbuf[:0], 0, 0, 0, 0), m)
	if ok {
		head = appendEnd(head, end)
	} else if head, err = (proto.MarshalOptions{}).MarshalAppend(head, m); err != nil {
		return nil, nil, err
	}
	if len(body) > 0 {
		head = protowire.AppendTag(head, bodyField, protowire.BytesType)
		head = protowire.AppendVarint(head, uint64(len(body)))
	}
	size := len(head) - 4 + len(body)
	if size > maxFrameBytes {
		return nil, nil, fmt.Errorf("wire: frame of %d bytes is over the limit of %d", size, maxFrameBytes)
	}
	binary.BigEndian.PutUint32(head, uint32(size))
	fc.wbuf = head
	return head, body, nil
}

// DirectClient is the calling side of the direct path: it forwards HTTP
// exchanges to a module over the module's Unix socket, all of them over one
// multiplexed connection (mux.go) when the module serves it, else one at a
// time per connection, keeping idle connections for the next ones. It is
// safe for concurrent use.
type DirectClient struct {
	path   string
	dialer net.Dialer

	dialMu sync.Mutex // one dial of a multiplexed connection at a time
	mu     sync.Mutex
	idle   []*frameConn
	mux    *muxClient
	noMux  bool // the module does not serve multiplexed connections
	closed bool
}

// NewDirectClient returns a client of the module serving the direct path
// at the Unix socket path. It connects on first use.
func NewDirectClient(path string) *DirectClient {
	return &DirectClient{path: path}
}

// NewPerConnClient is NewDirectClient keeping to one exchange per
// connection, as with a module that does not serve multiplexed ones (to
// compare the two).
func NewPerConnClient(path string) *DirectClient {
	return &DirectClient{path: path, noMux: true}
}

// Warm connects ahead of the first request.
func (d *DirectClient) Warm(ctx context.Context) error {
	if mc, err := d.muxClient(ctx); mc != nil || err != nil {
		return err
	}
	fc, err := d.get(ctx)
	if err != nil {
		return err
	}
	d.put(fc)
	return nil
}

// Multiplexed tells whether exchanges go over a multiplexed connection.
func (d *DirectClient) Multiplexed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mux != nil
}

// muxClient returns the multiplexed connection, dialling it if there is
// none or it broke; nil without error when the module does not serve one.
func (d *DirectClient) muxClient(ctx context.Context) (*muxClient, error) {
	d.mu.Lock()
	mc, noMux, closed := d.mux, d.noMux, d.closed
	d.mu.Unlock()
	switch {
	case closed:
		return nil, errClientClosed
	case noMux:
		return nil, nil
	case mc != nil && mc.alive():
		return mc, nil
	}
	d.dialMu.Lock()
	defer d.dialMu.Unlock()
	d.mu.Lock()
	if d.mux != nil && d.mux != mc && d.mux.alive() {
		mc = d.mux // another goroutine dialled meanwhile
		d.mu.Unlock()
		return mc, nil
	}
	d.mu.Unlock()
	mc, err := dialMux(ctx, &d.dialer, d.path)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case errors.Is(err, errNoMux):
		d.noMux = true
		return nil, nil
	case err != nil:
		return nil, err
	case d.closed:
		mc.close()
		return nil, errClientClosed
	}
	d.mux = mc
	return mc, nil
}

// Close closes the connections; exchanges in flight on a multiplexed one
// fail, those on their own connection close when they end. Forward fails
// after Close.
func (d *DirectClient) Close() error {
	d.mu.Lock()
	idle, mc := d.idle, d.mux
	d.idle, d.mux, d.closed = nil, nil, true
	d.mu.Unlock()
	for _, fc := range idle {
		_ = fc.c.Close()
	}
	if mc != nil {
		mc.close()
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
	c, err := dialModule(ctx, &d.dialer, d.path)
	if err != nil {
		return nil, err
	}
	return newFrameConn(c), nil
}

// dialModule connects to a module's direct socket at path, for either
// transport; the connection reads and writes without the scheduler's
// hand-off (NonblockingConn), as the module's side does.
func dialModule(ctx context.Context, dialer *net.Dialer, path string) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return NonblockingConn(c), nil
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
	if n := head.GetContentLength(); n >= 0 && n <= ChunkSize {
		// A request whose body fits in one frame goes over the multiplexed
		// connection; a big or chunked upload keeps a connection to itself,
		// where frames are read straight off the socket by the goroutine
		// that relays them (on the multiplexed one each big frame is copied
		// and handed from the reader to that goroutine: twice as slow for
		// a 1 MiB echo, BENCHMARKS.md).
		if mc, err := d.muxClient(ctx); err != nil {
			return &ForwardError{Err: err}
		} else if mc != nil {
			return mc.Forward(ctx, head, body, w)
		}
	}
	fc, err := d.get(ctx)
	if err != nil {
		return &ForwardError{Err: err}
	}
	cs := &connStream{d: d, fc: fc, ctx: ctx}
	// Closing the connection is how a cancelled client cancels the module's
	// handler; it also unblocks this exchange's reads and writes.
	cs.stopWatch = context.AfterFunc(ctx, func() {
		cs.cancelled.Store(true)
		_ = fc.c.Close()
	})
	return forwardOver(cs, head, body, w)
}

// connStream is one exchange on a connection of its own (an
// exchangeStream). The connection goes back to the pool only after an
// exchange that ended cleanly both ways: the last response frame received
// and the whole request body sent; anything else closes it.
type connStream struct {
	d         *DirectClient
	fc        *frameConn
	ctx       context.Context
	stopWatch func() bool
	cancelled atomic.Bool
	ended     atomic.Bool // the last response frame arrived
	endSent   atomic.Bool // the request frame with End is written
	closeOnce sync.Once
	frame     modulev1.HTTPResponseFrame
}

// err prefers the context's error when the exchange was cancelled (the
// connection was closed under it).
func (cs *connStream) err(err error) error {
	if cs.cancelled.Load() {
		return cs.ctx.Err()
	}
	return err
}

// Send writes a request frame; only one goroutine sends at a time (the
// first frame, then the body's).
func (cs *connStream) Send(f *modulev1.HTTPRequestFrame) error {
	if err := cs.fc.writeFrame(f); err != nil {
		return cs.err(err)
	}
	if f.GetEnd() {
		cs.endSent.Store(true)
	}
	return nil
}

// Recv reads the next response frame; its body is valid until the next
// Recv (see readResponse).
func (cs *connStream) Recv() (*modulev1.HTTPResponseFrame, error) {
	if err := cs.fc.readResponse(&cs.frame); err != nil {
		return nil, cs.err(err)
	}
	if cs.frame.GetEnd() {
		cs.ended.Store(true)
	}
	return &cs.frame, nil
}

// arriving tells whether the next response frame is already buffered.
func (cs *connStream) arriving() bool { return cs.fc.arriving() }

// Close puts the connection back after a clean exchange, else closes it
// (which cancels the module's handler and unblocks a Send).
func (cs *connStream) Close() {
	cs.closeOnce.Do(func() {
		if cs.stopWatch() && cs.ended.Load() && cs.endSent.Load() {
			cs.fc.release() // an idle connection holds no pooled buffer
			cs.d.put(cs.fc)
			return
		}
		_ = cs.fc.c.Close()
	})
}

// endWriteWait is how long an answered exchange waits for the end of its
// upload to be written before the connection is given up on.
const endWriteWait = 100 * time.Millisecond

// ServeDirect serves the direct path on the connections ln accepts, with h,
// until ln is closed; it returns the error that ended Accept. The handler
// sees requests as [NewHTTPServer]'s does.
func ServeDirect(ln net.Listener, h http.Handler, log *slog.Logger) error {
	wk := newWorkers(h, log)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if uc, ok := c.(*net.UnixConn); ok {
			_ = uc.SetWriteBuffer(1 << 20)
		}
		go serveDirectConn(NonblockingConn(c), wk)
	}
}

// serveDirectConn reads frames from one connection: a head starts an
// exchange, whose handler runs on a worker goroutine (workers.go), so that the
// reader keeps reading and notices the connection closing (the core's
// cancellation) while the handler runs. Body frames go to the handler as it
// reads them.
func serveDirectConn(c net.Conn, wk *workers) {
	log := wk.log
	fc := newFrameConn(c)
	defer c.Close()
	if b, err := fc.br.Peek(4); err == nil && string(b) == muxMagic[:4] {
		if b, err := fc.br.Peek(len(muxMagic)); err == nil && string(b) == muxMagic {
			_, _ = fc.br.Discard(len(muxMagic))
			serveMux(fc, wk)
		}
		return
	}
	var cur *exchange // the exchange whose request is still arriving or running
	defer func() {
		if cur != nil {
			cur.connGone(io.ErrUnexpectedEOF)
		}
	}()
	for {
		frame := new(modulev1.HTTPRequestFrame)
		// Body frames go to a handler reading them from a queue: their
		// bodies are pooled (see exchange.Recv).
		more := cur != nil && !cur.bodyEnded
		buf, err := fc.readRequest(frame, more)
		if err != nil {
			if err != io.EOF && cur != nil {
				log.Debug("direct connection failed", "error", err)
			}
			return
		}
		if more {
			cur.deliver(frame, len(frame.GetBody()), buf)
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
		wk.run(cur)
	}
}

// bodyBudget is how many bytes of request body a direct connection's reader
// queues for a handler that has not read them yet. Below it the reader keeps
// reading, and so sees the core close the connection (a cancelled request)
// even while the handler ignores the body; above it the reader waits, which
// pushes back on the core and, through it, on the client.
const bodyBudget = 1 << 20

// exchange is one request served on a direct connection, or on a
// multiplexed one (mux set).
type exchange struct {
	fc        *frameConn
	mux       *muxServer
	id        uint32
	first     *modulev1.HTTPRequestFrame
	ctx       context.Context
	cancel    context.CancelFunc
	bodyEnded bool          // the reader has seen end, or the connection went (reader's own)
	done      chan struct{} // closed when the handler has returned

	mu     sync.Mutex
	queue  []queuedFrame // body frames the handler has not read
	held   bodyBuf       // the body of the frame Recv returned last
	queued int           // their bytes
	ended  bool          // no frame follows those in queue
	closed bool          // the handler has returned: frames are dropped
	err    error         // why the body ended early
	ready  chan struct{} // signals Recv: a frame or the end arrived
	space  chan struct{} // signals deliver: the handler took a frame

	// Multiplexed only: flow control (mux.go).
	window   credit // response bytes the core can still take
	consumed int    // request bytes taken, not yet credited (under mu)
}

type queuedFrame struct {
	f   *modulev1.HTTPRequestFrame
	n   int     // what it counts against the budget or window
	buf bodyBuf // where f's body is, when pooled
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
	defer x.closeBody()
	if x.mux != nil {
		defer x.mux.done(x)
	}
	// aborted stays true unless serveExchange returns nil: a handler that
	// calls runtime.Goexit never lets it return.
	aborted := true
	defer func() {
		if !aborted {
			return
		}
		if x.mux != nil {
			// The core fails the exchange and cuts the client's connection.
			_, _ = x.mux.conn.send(x.id, muxAbort, nil, 0)
			return
		}
		// Cut the connection: the core takes a close before the last frame
		// as a broken answer, and never reuses the connection.
		_ = x.fc.c.Close()
	}()
	aborted = serveExchange(x.ctx, h, log, x.first, x, x) != nil
}

// errBodyClosed is what reading the body gets once the handler has
// returned (a goroutine it left behind), as with net/http.
var errBodyClosed = errors.New("wire: read of the request body after the handler returned")

// closeBody ends the body when the handler returns: what is queued is
// dropped, what follows is dropped on arrival, and a read fails. The body
// Recv returned last is left to the garbage collector, not put back: a
// goroutine the handler left behind may still be reading it.
func (x *exchange) closeBody() {
	x.mu.Lock()
	x.closed = true
	if !x.ended {
		x.ended, x.err = true, errBodyClosed
	}
	for _, q := range x.queue {
		q.buf.put()
	}
	x.queue, x.queued, x.held = nil, 0, bodyBuf{}
	x.mu.Unlock()
	if x.ready != nil {
		signal(x.ready)
	}
}

// signal wakes the goroutine waiting on c, if any.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver queues a body frame, counting n, for the handler; it drops the
// frame once the handler has returned without reading the whole body. buf
// holds the frame's body when pooled. On a direct connection it waits while
// bodyBudget bytes are queued already; on a multiplexed one it never waits
// (the core keeps to its window) and reports false when the core sent past
// it.
func (x *exchange) deliver(frame *modulev1.HTTPRequestFrame, n int, buf bodyBuf) bool {
	if frame.GetEnd() {
		x.bodyEnded = true
	}
	for {
		x.mu.Lock()
		if x.closed {
			x.mu.Unlock()
			buf.put()
			return true
		}
		if x.mux != nil || x.queued < bodyBudget {
			x.queue = append(x.queue, queuedFrame{frame, n, buf})
			x.queued += n
			x.ended = x.bodyEnded
			ok := x.mux == nil || x.queued <= muxWindowBytes+muxOverrun
			x.mu.Unlock()
			signal(x.ready)
			return ok
		}
		x.mu.Unlock()
		select {
		case <-x.space:
		case <-x.done:
			buf.put()
			return true
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

// Recv returns the next body frame (frameReceiver). The frame it returned
// before is then read (bodyReader asks for the next one only then), and its
// pooled body is put back.
func (x *exchange) Recv() (*modulev1.HTTPRequestFrame, error) {
	for {
		x.mu.Lock()
		if len(x.queue) > 0 {
			q := x.queue[0]
			x.queue[0] = queuedFrame{}
			x.queue = x.queue[1:]
			x.queued -= q.n
			x.held.put()
			x.held = q.buf
			credit := 0
			if x.mux != nil {
				if x.consumed += q.n; x.consumed >= muxWindowBytes/2 && !x.ended {
					credit, x.consumed = x.consumed, 0
				}
			}
			x.mu.Unlock()
			if credit > 0 {
				_, _ = x.mux.conn.send(x.id, muxWindow, nil, uint32(credit))
			}
			signal(x.space)
			return q.f, nil
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

// Send writes a response frame (frameSender). On a direct connection only
// the handler's goroutine writes to it; on a multiplexed one Send waits for
// credit from the core.
func (x *exchange) Send(frame *modulev1.HTTPResponseFrame) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	if x.mux == nil {
		return x.fc.writeFrame(frame)
	}
	if !x.window.wait(x.ctx.Done(), nil) {
		return x.ctx.Err()
	}
	n, err := x.mux.conn.send(x.id, muxData, frame, 0)
	if err != nil {
		return err
	}
	x.window.spend(n)
	return nil
}
