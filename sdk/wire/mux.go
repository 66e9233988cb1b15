package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// The multiplexed direct path. One connection per exchange (direct.go) costs
// every request a write, a read that finds nothing and a wake-up on each
// side, even when sixty-four requests are in flight at once; on a two-core
// VM whose syscalls are expensive, that was most of the price of a request.
// A multiplexed connection carries every exchange of a core with a module
// over one Unix socket connection, so that under load several frames share
// one write and one read:
//
//   - any goroutine sends: its frame is appended to the connection's
//     outgoing buffer and, unless another goroutine is writing already (it
//     then writes this frame too, with everything appended meanwhile),
//     written at once. No writer goroutine, no hand-off when idle.
//   - one goroutine per side reads, and hands each frame to its exchange: on
//     the core the goroutine serving the client, on the module the handler
//     (whose goroutine the first frame starts).
//
// A frame is a frame of the per-connection protocol (a 4-byte big-endian
// length and the bytes) whose bytes are a 5-byte header (stream id,
// big-endian, and kind) and the payload: an HTTPRequestFrame or HTTPResponseFrame, exactly those
// of the other transports, for muxData; nothing for muxCancel (the core
// cancels the handler: the client left) and muxAbort (the module's answer
// broke off); a 4-byte count for muxWindow.
//
// Flow control keeps one slow exchange from holding up the others and
// bounds memory: a sender may have muxWindowBytes of data frames (after the
// first request frame) not yet taken by the receiving exchange; the receiver
// gives credit back (muxWindow) as its side takes frames. Readers never
// block, so the connection always drains.
//
// A connection starts with muxMagic from the core, echoed by the module;
// an SDK without the multiplexed path closes the connection at it (a frame
// length over the limit), and the core keeps to one connection per exchange.

const (
	muxMagic     = "\xff\xffCHMUX1" // 8 bytes
	muxStreamLen = 5                // stream id and kind, after the length
	muxHeaderLen = 4 + muxStreamLen // length, stream id and kind

	muxData   byte = 0
	muxCancel byte = 1
	muxAbort  byte = 2
	muxWindow byte = 3

	// muxWindowBytes is how many bytes of data frames one exchange may have
	// in flight one way.
	muxWindowBytes = 1 << 20
	// muxOverrun is what a receiver tolerates over the window (the sender
	// may start a frame with any credit left) before it takes the peer for
	// broken.
	muxOverrun = bigChunkSize + 64<<10
	// muxGatherBelow: a write of fewer bytes waits for the goroutines ready
	// to run (see muxConn.send); a bigger one goes at once.
	muxGatherBelow = 64 << 10
	// muxKeepBuffer is the largest outgoing buffer kept for reuse.
	muxKeepBuffer = 1 << 20
	// muxWriteTimeout bounds one write: the peer's reader never waits, so a
	// connection that takes nothing for that long has a frozen peer, and is
	// given up (every exchange on it fails) rather than holding them all.
	muxWriteTimeout = 30 * time.Second
)

// muxConn is a multiplexed connection's framing: any goroutine sends, one
// goroutine reads.
type muxConn struct {
	fc *frameConn // the connection, and its reading side

	mu      sync.Mutex
	out     []byte // frames waiting to be written
	spare   []byte
	writing bool
	err     error
}

func newMuxConn(fc *frameConn) *muxConn { return &muxConn{fc: fc} }

// send queues one frame, msg (nil for none) or the 4 bytes of n as its
// payload, and writes it unless another goroutine is writing, which then
// does. It returns the payload's size.
func (m *muxConn) send(id uint32, kind byte, msg proto.Message, n uint32) (int, error) {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		return 0, err
	}
	start := len(m.out)
	b := append(m.out, 0, 0, 0, 0, 0, 0, 0, 0, kind)
	binary.BigEndian.PutUint32(b[start+4:], id)
	var err error
	if msg != nil {
		b, err = appendFrame(b, msg)
	} else if kind == muxWindow {
		b = binary.BigEndian.AppendUint32(b, n)
	}
	size := len(b) - start - muxHeaderLen
	if err == nil && size+muxStreamLen > maxFrameBytes {
		err = fmt.Errorf("wire: frame of %d bytes is over the limit of %d", size+muxStreamLen, maxFrameBytes)
	}
	if err != nil {
		m.out = b[:start]
		m.mu.Unlock()
		return 0, err
	}
	binary.BigEndian.PutUint32(b[start:], uint32(size+muxStreamLen))
	m.out = b
	if m.writing {
		m.mu.Unlock()
		return size, nil // on its way with the writer's next write
	}
	m.writing = true
	if len(m.out) < muxGatherBelow {
		// Let the goroutines that are ready to run go first: under load
		// they are exchanges about to send too, and their frames go out
		// with this one in one write. Idle, this returns at once.
		m.mu.Unlock()
		runtime.Gosched()
		m.mu.Lock()
	}
	for len(m.out) > 0 && m.err == nil {
		buf := m.out
		m.out = m.spare[:0]
		m.spare = nil
		m.mu.Unlock()
		_ = m.fc.c.SetWriteDeadline(time.Now().Add(muxWriteTimeout))
		_, werr := m.fc.c.Write(buf)
		m.mu.Lock()
		if cap(buf) <= muxKeepBuffer {
			m.spare = buf[:0]
		}
		if werr != nil && m.err == nil {
			m.err = werr
			_ = m.fc.c.Close() // the reader sees it and fails every exchange
		}
	}
	m.writing = false
	err = m.err
	m.mu.Unlock()
	return size, err
}

// readFrame returns the next frame. payload is valid until the next call.
func (m *muxConn) readFrame() (id uint32, kind byte, payload []byte, err error) {
	b, err := m.fc.nextFrame()
	if err != nil {
		return 0, 0, nil, err
	}
	if len(b) < muxStreamLen {
		return 0, 0, nil, errors.New("wire: bad frame")
	}
	return binary.BigEndian.Uint32(b), b[4], b[muxStreamLen:], nil
}

// windowCredit reads a muxWindow payload.
func windowCredit(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, errors.New("wire: bad window frame")
	}
	return int(binary.BigEndian.Uint32(p)), nil
}

// credit is one exchange's flow-control window one way: the bytes its
// sender may still send.
type credit struct {
	mu   sync.Mutex
	n    int
	wake chan struct{} // made by a waiter
}

// add is credit given back by the receiver.
func (c *credit) add(n int) {
	c.mu.Lock()
	c.n += n
	w := c.wake
	c.mu.Unlock()
	if w != nil {
		signal(w)
	}
}

// spend counts n bytes sent.
func (c *credit) spend(n int) {
	c.mu.Lock()
	c.n -= n
	c.mu.Unlock()
}

// wait returns true once there is credit, false if stop or stop2 (which
// may be nil) is closed first.
func (c *credit) wait(stop, stop2 <-chan struct{}) bool {
	c.mu.Lock()
	for c.n <= 0 {
		if c.wake == nil {
			c.wake = make(chan struct{}, 1)
		}
		w := c.wake
		c.mu.Unlock()
		select {
		case <-w:
		case <-stop:
			return false
		case <-stop2:
			return false
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return true
}

// errNoMux is a module that does not serve the multiplexed path.
var errNoMux = errors.New("wire: the module does not serve multiplexed connections")

// muxClient is the core's side of a multiplexed connection.
type muxClient struct {
	conn *muxConn

	mu      sync.Mutex
	streams map[uint32]*muxStream
	next    uint32
	err     error // why the connection ended: no new exchange
}

// dialMux opens a multiplexed connection to the module at path. A module
// that does not serve one gives errNoMux.
func dialMux(ctx context.Context, dialer *net.Dialer, path string) (*muxClient, error) {
	c, err := dialModule(ctx, dialer, path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	answer := make([]byte, len(muxMagic))
	if _, err = io.WriteString(c, muxMagic); err == nil {
		_, err = io.ReadFull(c, answer)
	}
	if err != nil || string(answer) != muxMagic {
		_ = c.Close()
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return nil, errNoMux
		}
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	mc := &muxClient{conn: newMuxConn(newFrameConn(c)), streams: make(map[uint32]*muxStream)}
	go mc.readLoop()
	return mc, nil
}

// alive tells whether new exchanges can start on mc.
func (mc *muxClient) alive() bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.err == nil
}

func (mc *muxClient) close() { mc.die(net.ErrClosed) }

// die ends the connection and every exchange on it.
func (mc *muxClient) die(err error) {
	mc.mu.Lock()
	if mc.err == nil {
		mc.err = err
	}
	streams := mc.streams
	mc.streams = map[uint32]*muxStream{}
	mc.mu.Unlock()
	_ = mc.conn.fc.c.Close()
	for _, st := range streams {
		st.fail(fmt.Errorf("wire: module connection: %w", err), true)
	}
}

func (mc *muxClient) readLoop() {
	for {
		id, kind, p, err := mc.conn.readFrame()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			mc.die(err)
			return
		}
		mc.mu.Lock()
		st := mc.streams[id]
		mc.mu.Unlock()
		switch kind {
		case muxData:
			if st == nil {
				continue // an exchange the core has given up on
			}
			f := new(modulev1.HTTPResponseFrame)
			if err := decodeResponseFrame(p, f); err != nil {
				mc.die(err)
				return
			}
			if !st.push(f, len(p)) {
				mc.die(errors.New("wire: the module sent past its window"))
				return
			}
		case muxAbort:
			if st != nil {
				st.fail(errAborted, true)
			}
		case muxWindow:
			n, err := windowCredit(p)
			if err != nil {
				mc.die(err)
				return
			}
			if st != nil {
				st.window.add(n)
			}
		default:
			mc.die(fmt.Errorf("wire: frame of unknown kind %d", kind))
			return
		}
	}
}

// Forward carries one exchange (see [DirectClient.Forward]).
func (mc *muxClient) Forward(ctx context.Context, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
	st := &muxStream{mc: mc, ctx: ctx, ready: make(chan struct{}, 1), over: make(chan struct{})}
	st.window.n = muxWindowBytes
	mc.mu.Lock()
	if mc.err != nil {
		err := mc.err
		mc.mu.Unlock()
		return &ForwardError{Err: err}
	}
	for {
		mc.next++
		if _, taken := mc.streams[mc.next]; mc.next != 0 && !taken {
			break
		}
	}
	st.id = mc.next
	mc.streams[st.id] = st
	mc.mu.Unlock()
	defer mc.forget(st)
	return forwardOver(st, head, body, w)
}

// watch fails st as soon as the client's request ends, wherever the
// exchange's goroutines are.
func (st *muxStream) watch() {
	if st.unwatch == nil {
		st.unwatch = context.AfterFunc(st.ctx, st.cancelled)
	}
}

// forget removes st from the connection's exchanges: it is over.
func (mc *muxClient) forget(st *muxStream) {
	if st.unwatch != nil {
		st.unwatch()
	}
	mc.mu.Lock()
	if mc.streams[st.id] == st {
		delete(mc.streams, st.id)
	}
	mc.mu.Unlock()
}

// muxStream is one exchange on a muxClient (an exchangeStream).
type muxStream struct {
	mc *muxClient
	id uint32
	// ctx is the client's request: when it ends, the exchange fails and the
	// module is told to cancel the handler. Waiting for the module (Recv,
	// or credit in Send), the exchange's goroutines watch ctx themselves;
	// once the exchange streams (an answer in several frames, or a body),
	// the core may instead be blocked writing to a client that is gone,
	// so watch registers a hook on ctx (unwatch, its removal).
	ctx     context.Context
	unwatch func() bool // set once, by the goroutine that calls Recv

	window credit        // request bytes the module can still take
	over   chan struct{} // closed with err

	mu       sync.Mutex
	queue    []muxQueued // response frames not yet taken by Recv
	queued   int         // their bytes
	consumed int         // response bytes taken, not yet credited
	ended    bool        // the last response frame arrived
	err      error       // the exchange is over on the core's side
	told     bool        // the module knows: cancelled, aborted, or gone
	ready    chan struct{}
}

type muxQueued struct {
	f *modulev1.HTTPResponseFrame
	n int
}

// push queues a response frame; false means the module overran the window.
func (st *muxStream) push(f *modulev1.HTTPResponseFrame, n int) bool {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return true
	}
	st.queue = append(st.queue, muxQueued{f, n})
	st.queued += n
	ok := st.queued <= muxWindowBytes+muxOverrun
	st.mu.Unlock()
	signal(st.ready)
	return ok
}

// fail ends the exchange with err; told says the module needs no cancel
// (it aborted, or the connection is gone).
func (st *muxStream) fail(err error, told bool) {
	st.mu.Lock()
	if st.err == nil {
		st.err = err
		close(st.over)
	}
	tell := !told && !st.told && !st.ended
	st.told = st.told || told || tell
	st.mu.Unlock()
	signal(st.ready)
	if tell {
		_, _ = st.mc.conn.send(st.id, muxCancel, nil, 0)
	}
}

var errExchangeOver = errors.New("wire: exchange over")

// Close ends the exchange on the core's side (exchangeStream).
func (st *muxStream) Close() { st.fail(errExchangeOver, false) }

// Send sends a request frame, waiting for credit for any after the first.
func (st *muxStream) Send(f *modulev1.HTTPRequestFrame) error {
	first := f.GetHead() != nil
	if !first && !st.window.wait(st.over, st.ctx.Done()) {
		st.cancelled()
	}
	st.mu.Lock()
	err := st.err
	st.mu.Unlock()
	if err != nil {
		return err
	}
	n, err := st.mc.conn.send(st.id, muxData, f, 0)
	if err != nil {
		return err
	}
	if !first {
		st.window.spend(n)
	}
	return nil
}

// Recv returns the next response frame, giving credit back for what it
// took.
func (st *muxStream) Recv() (*modulev1.HTTPResponseFrame, error) {
	for {
		st.mu.Lock()
		if len(st.queue) > 0 {
			q := st.queue[0]
			st.queue[0] = muxQueued{}
			st.queue = st.queue[1:]
			st.queued -= q.n
			st.consumed += q.n
			credit := 0
			if q.f.GetEnd() {
				st.ended = true
			} else if st.consumed >= muxWindowBytes/2 {
				credit, st.consumed = st.consumed, 0
			}
			st.mu.Unlock()
			if !q.f.GetEnd() {
				st.watch() // the core writes this frame out, and waits for more
			}
			if credit > 0 {
				_, _ = st.mc.conn.send(st.id, muxWindow, nil, uint32(credit))
			}
			return q.f, nil
		}
		if err := st.err; err != nil {
			st.mu.Unlock()
			return nil, err
		}
		st.mu.Unlock()
		select {
		case <-st.ready:
		case <-st.ctx.Done():
			st.cancelled()
		}
	}
}

// cancelled fails the exchange if the client's request has ended.
func (st *muxStream) cancelled() {
	if err := st.ctx.Err(); err != nil {
		st.fail(err, false)
	}
}

// arriving tells whether the next response frame is here (arriver).
func (st *muxStream) arriving() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.queue) > 0
}

// serveMux serves a multiplexed connection whose magic fc has read: every
// exchange's handler runs on a worker goroutine of its own (workers.go).
func serveMux(fc *frameConn, wk *workers) {
	log := wk.log
	ms := &muxServer{conn: newMuxConn(fc), exchanges: make(map[uint32]*exchange)}
	defer func() {
		ms.mu.Lock()
		xs := ms.exchanges
		ms.exchanges = nil
		ms.mu.Unlock()
		for _, x := range xs {
			x.connGone(io.ErrUnexpectedEOF)
		}
	}()
	if _, err := io.WriteString(fc.c, muxMagic); err != nil {
		return
	}
	for {
		id, kind, p, err := ms.conn.readFrame()
		if err != nil {
			if err != io.EOF {
				log.Debug("multiplexed connection failed", "error", err)
			}
			return
		}
		ms.mu.Lock()
		x := ms.exchanges[id]
		ms.mu.Unlock()
		switch kind {
		case muxData:
			frame := new(modulev1.HTTPRequestFrame)
			if err := decodeRequestFrame(p, frame); err != nil {
				log.Debug("multiplexed connection: bad frame", "error", err)
				return
			}
			if frame.GetHead() != nil {
				if x != nil {
					log.Debug("multiplexed connection: exchange started twice", "stream", id)
					return
				}
				x = newExchange(nil, frame)
				x.mux, x.id = ms, id
				x.window.n = muxWindowBytes
				ms.mu.Lock()
				ms.exchanges[id] = x
				ms.mu.Unlock()
				wk.run(x)
				continue
			}
			if x != nil && !x.deliver(frame, len(p), bodyBuf{}) {
				log.Debug("multiplexed connection: the core sent past its window", "stream", id)
				return
			}
		case muxCancel:
			if x != nil {
				x.connGone(context.Canceled)
			}
		case muxWindow:
			n, err := windowCredit(p)
			if err != nil {
				return
			}
			if x != nil {
				x.window.add(n)
			}
		default:
			log.Debug("multiplexed connection: frame of unknown kind", "kind", kind)
			return
		}
	}
}

// muxServer is the module's side of a multiplexed connection.
type muxServer struct {
	conn      *muxConn
	mu        sync.Mutex
	exchanges map[uint32]*exchange
}

// done forgets x: its handler has returned.
func (ms *muxServer) done(x *exchange) {
	ms.mu.Lock()
	if ms.exchanges[x.id] == x {
		delete(ms.exchanges, x.id)
	}
	ms.mu.Unlock()
}
