package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// A module that answers in full but does not read the rest of the upload
// (frozen, or not the SDK's reader) does not hold the core: when the end of
// the upload cannot be written, Forward gives the connection up after
// endWriteWait. (Found in review: it waited without bound.) The sizes
// straddle the Unix socket's buffer, so that for one of them (176 KiB here)
// the body's frames fit and the end frame blocks.
func TestDirectModuleThatStopsReading(t *testing.T) {
	hung := 0
	for k := 120 << 10; k <= 240<<10; k += 8 << 10 {
		dir, _ := os.MkdirTemp("", "rv")
		defer os.RemoveAll(dir)
		ln, err := net.Listen("unix", filepath.Join(dir, "s"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		conns := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			time.Sleep(150 * time.Millisecond) // let the core read the client's body to EOF
			raw, _ := proto.Marshal(&modulev1.HTTPResponseFrame{Head: &modulev1.ResponseHead{Status: 200}, Body: []byte("ok"), End: true})
			hdr := binary.BigEndian.AppendUint32(nil, uint32(len(raw)))
			_, _ = c.Write(append(hdr, raw...))
			// never reads
		}()
		d := NewPerConnClient(ln.Addr().String()) // the fake module speaks that protocol
		size := ChunkSize + k
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		rec := httptest.NewRecorder()
		go func() {
			done <- d.Forward(ctx, &modulev1.RequestHead{Method: "POST", Path: "/", ContentLength: int64(size)}, bytes.NewReader(make([]byte, size)), rec)
		}()
		select {
		case err := <-done:
			if err != nil || rec.Body.String() != "ok" {
				t.Errorf("k=%dKiB: %v, body %q", k>>10, err, rec.Body.String())
			}
		case <-time.After(3 * time.Second):
			hung++
			t.Logf("k=%dKiB: Forward still blocked 3s after the module's last frame", k>>10)
			cancel()
			<-done
		}
		cancel()
		d.Close()
		select {
		case c := <-conns:
			c.Close()
		default:
		}
	}
	if hung > 0 {
		t.Errorf("Forward hung in %d configurations", hung)
	}
}

// A body read that outlives the handler (http.TimeoutHandler's inner
// handler, a goroutine handed r.Body) ends with an error, as net/http's
// does. (Found in review: with more than bodyBudget queued, the reader
// dropped the end frame and the read waited for ever.)
func TestDirectBodyReadAfterHandlerReturns(t *testing.T) {
	eachOf(t, directTransports, testBodyReadAfterHandlerReturns)
}

func testBodyReadAfterHandlerReturns(t *testing.T, transport string) {
	readDone := make(chan error, 1)
	core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // the core has sent the whole body by now
		go func() {
			time.Sleep(200 * time.Millisecond) // starts reading once the handler is done
			_, err := io.Copy(io.Discard, r.Body)
			readDone <- err
		}()
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	resp, err := http.Post(core.URL+"/x", "application/octet-stream", bytes.NewReader(make([]byte, bodyBudget+200<<10)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	select {
	case err := <-readDone:
		if err == nil {
			t.Error("a read after the handler returned ended without an error")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a body read after the handler returned is blocked for good (goroutine leak)")
	}
}

type sentFrames []*modulev1.HTTPResponseFrame

func (s *sentFrames) Send(f *modulev1.HTTPResponseFrame) error {
	*s = append(*s, &modulev1.HTTPResponseFrame{Head: f.Head, Body: append([]byte(nil), f.Body...), End: f.End})
	return nil
}

// A flush with nothing buffered after the head sends nothing: a handler
// that writes whole chunks and flushes after each (io.Copy with a flush)
// costs one frame a chunk, not two.
func TestFlushSendsNoEmptyFrame(t *testing.T) {
	var sent sentFrames
	w := &responseWriter{stream: &sent, header: make(http.Header)}
	w.Flush() // the head alone: the client sees the status at once
	require.Len(t, sent, 1)
	require.NotNil(t, sent[0].Head)
	chunk := bytes.Repeat([]byte("x"), ChunkSize)
	for range 3 {
		_, err := w.Write(chunk)
		require.NoError(t, err)
		w.Flush()
	}
	_, _ = w.Write([]byte("tail"))
	w.Flush()
	require.NoError(t, w.finish())
	require.Len(t, sent, 6, "head, three chunks, the tail, the end")
	for i, f := range sent[1:4] {
		assert.Len(t, f.Body, ChunkSize, "frame %d", i+1)
	}
	assert.Equal(t, "tail", string(sent[4].Body))
	assert.True(t, sent[5].End)
	assert.Empty(t, sent[5].Body)
}
