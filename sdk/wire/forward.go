package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

var (
	chunkPool    = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}
	bigChunkPool = sync.Pool{New: func() any { b := make([]byte, bigChunkSize); return &b }}
)

// ForwardError is returned by [Forward]. Started tells whether anything was
// written to the ResponseWriter before the failure: when it was not, the
// caller may still answer with an error status of its own.
type ForwardError struct {
	Started bool
	// Body is true when reading the request body failed (the client's side),
	// false when the module failed.
	Body bool
	Err  error
}

func (e *ForwardError) Error() string {
	side := "module"
	if e.Body {
		side = "request body"
	}
	return fmt.Sprintf("forward (%s): %v", side, e.Err)
}

func (e *ForwardError) Unwrap() error { return e.Err }

// Forward carries one HTTP exchange to a module over client and writes the
// module's answer to w, flushing after every frame so that streamed responses
// (server-sent events) reach the client as the module produces them. body may
// be nil. Cancelling ctx cancels the module's handler. A request whose body
// fits in one chunk costs one frame each way. Errors are *[ForwardError].
func Forward(ctx context.Context, client modulev1.HTTPClient, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Handle(ctx)
	if err != nil {
		return &ForwardError{Err: err}
	}
	return forwardOver(&grpcStream{stream: stream, cancel: cancel}, head, body, w)
}

// exchangeStream is one exchange as the core's side sees it: a gRPC stream,
// or a stream of a multiplexed direct connection.
type exchangeStream interface {
	// Send sends a request frame; one with End ends the upload. It may block
	// (flow control) until Close.
	Send(*modulev1.HTTPRequestFrame) error
	Recv() (*modulev1.HTTPResponseFrame, error)
	// Close ends the exchange on the core's side: a blocked Send returns,
	// and, unless the whole answer arrived, the module's handler is
	// cancelled. It may be called more than once, from any goroutine.
	Close()
}

// arriver is an exchangeStream that can tell whether its next response
// frame is already here: the frame before it is then not flushed on its
// own.
type arriver interface{ arriving() bool }

// grpcStream is an HTTP.Handle stream as an exchangeStream.
type grpcStream struct {
	stream modulev1.HTTP_HandleClient
	cancel context.CancelFunc
	sent   bool // the first frame is out
	ended  bool // Recv saw the last frame
}

func (g *grpcStream) Send(f *modulev1.HTTPRequestFrame) error {
	if err := g.stream.Send(f); err != nil {
		if !g.sent {
			return recvErr(g.stream, err)
		}
		return err
	}
	g.sent = true
	if f.GetEnd() {
		return g.stream.CloseSend()
	}
	return nil
}

func (g *grpcStream) Recv() (*modulev1.HTTPResponseFrame, error) {
	f, err := g.stream.Recv()
	if err == nil && f.GetEnd() {
		g.ended = true
	}
	return f, err
}

func (g *grpcStream) Close() {
	if g.ended {
		// Drain to the trailer so the stream's resources are released
		// cleanly.
		for {
			if _, err := g.stream.Recv(); err != nil {
				break
			}
		}
		g.ended = false
	}
	g.cancel()
}

// forwardOver carries one exchange over s (see [Forward]).
func forwardOver(s exchangeStream, head *modulev1.RequestHead, body io.Reader, w http.ResponseWriter) error {
	first := &modulev1.HTTPRequestFrame{Head: head, End: true}
	// Nothing to upload (most requests) takes no buffer.
	var bufp *[]byte
	if body != nil && head.GetContentLength() != 0 {
		bufp = chunkPool.Get().(*[]byte)
		n, rerr := body.Read(*bufp)
		first.Body = (*bufp)[:n]
		switch {
		case rerr == io.EOF:
		case rerr != nil:
			chunkPool.Put(bufp)
			s.Close()
			return &ForwardError{Body: true, Err: rerr}
		case int64(n) == head.GetContentLength():
		default:
			first.End = false
		}
	}
	err := s.Send(first)
	if bufp != nil && (first.End || err != nil) {
		chunkPool.Put(bufp) // no more body to read into it
	}
	if err != nil {
		s.Close()
		return &ForwardError{Err: err}
	}
	if first.End {
		// The whole body went in the first frame: no goroutine, no channel.
		started, err := relay(s, w, nil)
		s.Close()
		if err != nil {
			return &ForwardError{Started: started, Err: err}
		}
		return nil
	}
	// The goroutine below swaps the buffer for a bigger one: it gets its own
	// variables, so that bufp, read on every request, stays on the stack.
	upBufp := bufp
	buf := *upBufp

	// The rest of the body goes up while the answer comes down: a module may
	// answer before it has read everything (full duplex).
	var (
		bodyErr  error
		bodyEOF  atomic.Bool // the whole body is read; its end frame is going up
		bodyDone = make(chan struct{})
	)
	full := len(first.Body) == len(buf) // the last read filled the buffer
	go func() {
		defer close(bodyDone)
		big := false
		defer func() {
			if big {
				bigChunkPool.Put(upBufp)
			} else {
				chunkPool.Put(upBufp)
			}
		}()
		for {
			if !big && full {
				// The body arrives faster than a chunk at a time: it goes
				// in bigger frames. (A slow upload keeps the small buffer.)
				chunkPool.Put(upBufp)
				upBufp, big = bigChunkPool.Get().(*[]byte), true
				buf = *upBufp
			}
			n, rerr := body.Read(buf)
			full = n == len(buf)
			if n > 0 {
				if err := s.Send(&modulev1.HTTPRequestFrame{Body: buf[:n]}); err != nil {
					// The module is gone or has answered; Recv reports it.
					discardRest(body, buf, rerr)
					return
				}
			}
			if rerr == io.EOF {
				bodyEOF.Store(true)
				_ = s.Send(&modulev1.HTTPRequestFrame{End: true})
				return
			}
			if rerr != nil {
				bodyErr = rerr
				s.Close() // cancels the handler
				return
			}
		}
	}()

	// stopBody ends the upload once the module no longer wants it: the
	// answer is flushed first, then a blocked read of the client's body is
	// cut short (a slow or endless upload must not hold the answer back).
	stopBody := func(started bool) {
		s.Close()
		select {
		case <-bodyDone:
			return
		default:
		}
		if flusher, ok := w.(http.Flusher); ok && started {
			flusher.Flush()
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(lingerRead))
		<-bodyDone
	}
	started, err := relay(s, w, bodyDone)
	if err != nil {
		stopBody(started)
		if bodyErr != nil {
			return &ForwardError{Started: started, Body: true, Err: bodyErr}
		}
		return &ForwardError{Started: started, Err: err}
	}
	if bodyEOF.Load() {
		// The answer is whole and the end of the upload on its way: let it
		// go rather than cut the client's connection.
		t := time.NewTimer(endWriteWait)
		select {
		case <-bodyDone:
		case <-t.C:
		}
		t.Stop()
	}
	stopBody(started)
	return nil
}

// relay writes the module's answer, frame by frame, to w until its last
// frame. It returns whether the head is out. bodyDone is open while the
// request body is still going up (nil: it went whole in the first frame).
func relay(s exchangeStream, w http.ResponseWriter, bodyDone <-chan struct{}) (started bool, err error) {
	flusher, _ := w.(http.Flusher)
	arr, _ := s.(arriver)
	for {
		frame, err := s.Recv()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return started, err
		}
		if started, err = relayFrame(w, frame, started, bodyDone); err != nil {
			return started, err
		}
		if frame.GetEnd() {
			return started, nil
		}
		// Flushed unless the next frame is already arriving: the client gets
		// every frame as soon as the module sends it, in fewer writes.
		if flusher != nil && (arr == nil || !arr.arriving()) {
			flusher.Flush()
		}
	}
}

// After an answer that did not wait for the whole upload, the rest of the
// client's body is read and dropped, for up to lingerRead and lingerBytes:
// closing a connection with unread bytes in it makes the kernel reset it,
// and a reset can destroy the answer before the client reads it (net/http
// does the same after its own handlers, up to 256 KiB).
const (
	lingerRead  = 50 * time.Millisecond
	lingerBytes = 256 << 10
)

// discardRest reads and drops what is left of body, up to lingerBytes,
// unless the last read (its error rerr) ended it.
func discardRest(body io.Reader, buf []byte, rerr error) {
	if rerr != nil {
		return
	}
	_, _ = io.CopyBuffer(io.Discard, io.LimitReader(struct{ io.Reader }{body}, lingerBytes), buf)
}

// relayFrame writes one response frame to w: the module's head first when
// nothing was written yet (started false), then the body. It returns whether
// the head is out; an error writing the body means the client is gone.
func relayFrame(w http.ResponseWriter, frame *modulev1.HTTPResponseFrame, started bool, bodyDone <-chan struct{}) (bool, error) {
	if !started {
		h := frame.GetHead()
		if h == nil {
			return false, errors.New("first response frame has no head")
		}
		writeHead(w, h, bodyDone)
	}
	if len(frame.GetBody()) > 0 {
		if _, err := w.Write(frame.GetBody()); err != nil {
			return true, err
		}
	}
	return true, nil
}

// writeHead writes the module's response head to w. When the request body
// is still being sent (bodyDone open; nil when it went whole in the first
// frame), the client's connection is closed
// after this response: if the module stops reading, the rest of the upload
// is cut short with a read deadline, and net/http then takes the
// connection for dead (it cancels the context of the next request on it).
func writeHead(w http.ResponseWriter, h *modulev1.ResponseHead, bodyDone <-chan struct{}) {
	dst := w.Header()
	for _, kv := range h.GetHeaders() {
		name := http.CanonicalHeaderKey(kv.GetName())
		if !hopHeaders[name] {
			dst[name] = kv.GetValues()
		}
	}
	if bodyDone != nil {
		select {
		case <-bodyDone:
		default:
			dst.Set("Connection", "close")
		}
	}
	w.WriteHeader(int(h.GetStatus()))
}

// recvErr prefers the stream's real status over the io.EOF that Send returns
// when the server has already finished.
func recvErr(stream modulev1.HTTP_HandleClient, sendErr error) error {
	if sendErr != io.EOF {
		return sendErr
	}
	if _, err := stream.Recv(); err != nil && err != io.EOF {
		return err
	}
	return sendErr
}
