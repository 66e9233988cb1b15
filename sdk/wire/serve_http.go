package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// NewHTTPServer adapts an http.Handler to the HTTP service. The handler sees
// the request as the client sent it (full path, prefix included); the request
// head, with the principal and request ids, is in its context ([HeadFrom]).
// A panic in the handler becomes a 500 when nothing was written yet.
func NewHTTPServer(h http.Handler, log *slog.Logger) modulev1.HTTPServer {
	return &httpServer{handler: h, log: log}
}

type httpServer struct {
	modulev1.UnimplementedHTTPServer
	handler http.Handler
	log     *slog.Logger
}

func (s *httpServer) Handle(stream modulev1.HTTP_HandleServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := serveExchange(stream.Context(), s.handler, s.log, first, stream, stream); err != nil {
		// Part of the answer is out: end the stream with an error so the
		// core cuts the client's connection instead of ending the body
		// cleanly, which would pass a truncated body off as whole.
		return status.Error(codes.Aborted, err.Error())
	}
	return nil
}

// frameReceiver yields the request frames after the first; frameSender
// carries the response frames. A gRPC stream is both, and so is an exchange
// on the direct socket.
type (
	frameReceiver interface {
		Recv() (*modulev1.HTTPRequestFrame, error)
	}
	frameSender interface {
		Send(*modulev1.HTTPResponseFrame) error
	}
)

// errAborted is returned by serveExchange when the answer broke off after
// part of it was sent.
var errAborted = errors.New("handler aborted mid-response")

// serveExchange runs h for the request whose first frame is first, reading
// the rest of the body from recv and answering through send. It returns
// errAborted when the handler failed after part of the answer was sent, and
// an error from the head; a handler that panics before anything was sent
// answers 500 in the error shape.
func serveExchange(ctx context.Context, h http.Handler, log *slog.Logger, first *modulev1.HTTPRequestFrame, recv frameReceiver, send frameSender) (err error) {
	head := first.GetHead()
	if head == nil {
		return errors.New("first request frame has no head")
	}
	req, err := newRequest(WithHead(ctx, head), head, &bodyReader{stream: recv, buf: first.GetBody(), done: first.GetEnd()})
	if err != nil {
		return err
	}
	rw := &responseWriter{stream: send, header: make(http.Header)}
	defer rw.release()
	returned := false
	defer func() {
		p := recover()
		if p == nil {
			if returned {
				return
			}
			// The handler called runtime.Goexit: the goroutine ends once
			// the deferred calls have run, and the caller's own defer
			// aborts the exchange (exchange.run).
			log.Warn("module handler called runtime.Goexit", "path", head.GetPath(), "request_id", head.GetRequestId())
			p = http.ErrAbortHandler
		}
		if p != http.ErrAbortHandler {
			log.Error("panic in module handler", "panic", fmt.Sprint(p), "path", head.GetPath(), "request_id", head.GetRequestId(), "stack", string(debug.Stack()))
		}
		if rw.headSent || p == http.ErrAbortHandler {
			err = errAborted
			return
		}
		rw.header = http.Header{"Content-Type": {"application/json"}}
		rw.status = http.StatusInternalServerError
		rw.buf = append(rw.buf[:0], fmt.Sprintf(`{"detail":"Internal error.","error_code":"INTERNAL_ERROR","request_id":%q}`, head.GetRequestId())...)
		err = rw.finish()
	}()
	h.ServeHTTP(rw, req)
	returned = true
	return rw.finish()
}

func newRequest(ctx context.Context, head *modulev1.RequestHead, body io.ReadCloser) (*http.Request, error) {
	u := &url.URL{Path: head.GetPath(), RawPath: head.GetRawPath(), RawQuery: head.GetRawQuery()}
	// The URL is built from its parts, not printed and parsed again: "/"
	// only lets NewRequest check the method and set the rest up.
	req, err := http.NewRequestWithContext(ctx, head.GetMethod(), "/", body)
	if err != nil {
		return nil, err
	}
	req.URL = u
	req.RequestURI = u.RequestURI()
	req.Host = head.GetHost()
	req.Header = HeadersFromProto(head.GetHeaders())
	req.ContentLength = head.GetContentLength()
	if req.ContentLength == 0 {
		req.Body = http.NoBody
	}
	if ip := head.GetClientIp(); ip != "" {
		req.RemoteAddr = net.JoinHostPort(ip, "0")
	}
	return req, nil
}

// bodyReader reads the request body from the stream's frames. It asks for
// the next frame only once it has read the last one, whose body the stream
// may then reuse (exchange.Recv); reads are serialized, so that a handler
// reading from two goroutines at once cannot copy from a body given back.
type bodyReader struct {
	stream frameReceiver
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 {
		if b.done {
			return 0, io.EOF
		}
		frame, err := b.stream.Recv()
		if err != nil {
			if err == io.EOF {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		b.buf, b.done = frame.GetBody(), frame.GetEnd()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *bodyReader) Close() error { return nil }

// responseWriter buffers up to one chunk and sends a frame when the buffer is
// full, when the handler flushes, and when it returns.
type responseWriter struct {
	stream   frameSender
	header   http.Header
	status   int
	headSent bool
	buf      []byte
	bufp     *[]byte // from chunkPool; Send copies, so the buffer is reused
	err      error
}

func (w *responseWriter) release() {
	if w.bufp != nil {
		chunkPool.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
}

var _ http.Flusher = (*responseWriter)(nil)

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status != 0 || status < 200 {
		return // already written, or informational (not carried)
	}
	w.status = status
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.header.Get("Content-Type") == "" && !w.headSent && len(w.buf) == 0 {
		w.header.Set("Content-Type", http.DetectContentType(p))
	}
	written := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.bufp = chunkPool.Get().(*[]byte)
			w.buf = (*w.bufp)[:0]
		}
		n := min(len(p), ChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
		written += n
		if len(w.buf) == ChunkSize {
			if err := w.send(false); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// Flush sends what is buffered now. With nothing buffered after the head,
// there is nothing to send: the core writes every frame through to the
// client as it arrives (a handler that writes a whole chunk, then flushes,
// sends one frame, not a second, empty one).
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting failure (used by http.ResponseController).
func (w *responseWriter) FlushError() error {
	if w.err != nil {
		return w.err
	}
	if w.headSent && len(w.buf) == 0 {
		return nil
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.send(false)
}

func (w *responseWriter) send(end bool) error {
	frame := &modulev1.HTTPResponseFrame{Body: w.buf, End: end}
	if !w.headSent {
		frame.Head = &modulev1.ResponseHead{Status: int32(w.status), Headers: HeadersToProto(w.header)}
	}
	if err := w.stream.Send(frame); err != nil {
		w.err = err
		return err
	}
	w.headSent = true
	w.buf = w.buf[:0]
	return nil
}

func (w *responseWriter) finish() error {
	if w.err != nil {
		return nil // the caller is gone; nothing more to say
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.headSent && w.header.Get("Content-Length") == "" {
		w.header.Set("Content-Length", strconv.Itoa(len(w.buf)))
	}
	return w.send(true)
}
