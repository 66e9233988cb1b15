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
