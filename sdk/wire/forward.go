package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
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
	if err := stream.Send(first); err != nil {
		chunkPool.Put(bufp)
		return &ForwardError{Err: recvErr(stream, err)}
	}

	// The rest of the body goes up while the answer comes down: a module may
	// answer before it has read everything (full duplex).
	var (
		bodyErr  error
		bodyDone = make(chan struct{})
	)
	if first.End {
		chunkPool.Put(bufp)
		close(bodyDone)
		_ = stream.CloseSend()
	} else {
		go func() {
			defer close(bodyDone)
			defer chunkPool.Put(bufp)
			for {
				n, rerr := body.Read(buf)
				if n > 0 {
					if err := stream.Send(&modulev1.HTTPRequestFrame{Body: buf[:n]}); err != nil {
						return // the module is gone or has answered; Recv reports it
					}
				}
				if rerr == io.EOF {
					_ = stream.Send(&modulev1.HTTPRequestFrame{End: true})
					_ = stream.CloseSend()
					return
				}
				if rerr != nil {
					bodyErr = rerr
					cancel()
					return
				}
			}
		}()
	}

	started := false
	flusher, _ := w.(http.Flusher)
	// stopBody ends the upload once the module no longer wants it: the
	// answer is flushed first, then a blocked read of the client's body is
	// cut short (a slow or endless upload must not hold the answer back).
	stopBody := func() {
		cancel()
		select {
		case <-bodyDone:
			return
		default:
		}
		if flusher != nil && started {
			flusher.Flush()
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		<-bodyDone
	}
	fail := func(err error) error {
		stopBody()
		if bodyErr != nil {
			return &ForwardError{Started: started, Body: true, Err: bodyErr}
		}
		return &ForwardError{Started: started, Err: err}
	}
	for {
		frame, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
		if started, err = relayFrame(w, frame, started, bodyDone); err != nil {
			return fail(err)
		}
		if frame.GetEnd() {
			break
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	// Drain to the trailer so the stream's resources are released cleanly,
	// then stop any body upload the module no longer wants.
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	stopBody()
	return nil
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
// is still being sent (bodyDone open), the client's connection is closed
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
	select {
	case <-bodyDone:
	default:
		dst.Set("Connection", "close")
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
