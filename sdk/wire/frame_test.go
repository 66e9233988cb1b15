package wire

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// Frames written with their body split off (small bodies copied, big ones
// written with writev) read back as proto encodes them, and readResponse's
// own decoder agrees with proto's, skipping fields it does not know.
func TestFrameCodec(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w, r := newFrameConn(a), newFrameConn(b)
	head := &modulev1.ResponseHead{Status: 201, Headers: HeadersToProto(map[string][]string{"X-A": {"1", "2"}})}
	frames := []*modulev1.HTTPResponseFrame{
		{Head: head, Body: []byte("small"), End: false},
		{Body: bytes.Repeat([]byte("b"), 3*copyBodyBelow)},
		{Body: bytes.Repeat([]byte("c"), ChunkSize+100)}, // over the reader's buffer: a pooled one
		{End: true},
	}
	go func() {
		for _, f := range frames {
			if err := w.writeFrame(f); err != nil {
				return
			}
		}
		// A frame from a newer peer, with a field this side does not know.
		raw, _ := proto.Marshal(&modulev1.HTTPResponseFrame{Body: []byte("x"), End: true})
		raw = protowire.AppendTag(raw, 99, protowire.BytesType)
		raw = protowire.AppendBytes(raw, []byte("unknown"))
		_, _ = a.Write(append([]byte{0, 0, 0, byte(len(raw))}, raw...))
	}()
	for i, want := range frames {
		var got modulev1.HTTPResponseFrame
		if i%2 == 0 {
			require.NoError(t, r.readResponse(&got))
		} else {
			b, err := r.nextFrame()
			require.NoError(t, err)
			require.NoError(t, proto.Unmarshal(b, &got))
		}
		assert.True(t, proto.Equal(want, &got), "frame %d", i)
		assert.Equal(t, want.GetBody(), got.GetBody(), "frame %d", i) // before the next read
	}
	var got modulev1.HTTPResponseFrame
	require.NoError(t, r.readResponse(&got))
	assert.Equal(t, "x", string(got.GetBody()))
	assert.True(t, got.GetEnd())
}

// readRequest decodes request frames as proto does. Pooled, a body stays
// whole after the next read, in a pooled buffer (the frame's own when it was
// read into one) that put gives back.
func TestReadRequest(t *testing.T) {
	head := &modulev1.RequestHead{Method: "POST", Path: "/hello/echo", ContentLength: -1}
	frames := []*modulev1.HTTPRequestFrame{
		{Head: head, Body: []byte("first")},
		{Body: bytes.Repeat([]byte("s"), 100)},
		{Body: bytes.Repeat([]byte("m"), ChunkSize+100)}, // in the reader's buffer, over a chunk
		{Body: bytes.Repeat([]byte("b"), bigChunkSize)},  // in a buffer of its own
		{Body: bytes.Repeat([]byte("c"), ChunkSize)},
		{Body: bytes.Repeat([]byte("h"), bigChunkSize+8<<10)}, // over every pooled buffer
		{End: true},
	}
	for _, pooled := range []bool{false, true} {
		a, b := net.Pipe()
		w, r := newFrameConn(a), newFrameConn(b)
		go func() {
			for _, f := range frames {
				if err := w.writeFrame(f); err != nil {
					return
				}
			}
		}()
		var got []*modulev1.HTTPRequestFrame
		var bufs []bodyBuf
		for range frames {
			f := new(modulev1.HTTPRequestFrame)
			buf, err := r.readRequest(f, pooled)
			require.NoError(t, err)
			got, bufs = append(got, f), append(bufs, buf)
		}
		for i, want := range frames {
			assert.True(t, proto.Equal(want, got[i]), "pooled %v, frame %d", pooled, i)
		}
		if pooled {
			assert.Same(t, &chunkPool, bufs[1].pool)
			assert.Nil(t, bufs[2].p, "a body over a chunk from the reader's buffer is copied, not pooled")
			assert.Same(t, &bigFramePool, bufs[3].pool)
			assert.Same(t, &chunkPool, bufs[4].pool)
			assert.Nil(t, bufs[5].p, "a frame over every pooled buffer keeps the buffer it was read into")
			assert.Nil(t, bufs[6].p)
		} else {
			for i, buf := range bufs {
				assert.Nil(t, buf.p, "frame %d", i)
			}
		}
		for _, buf := range bufs {
			buf.put()
		}
		a.Close()
		b.Close()
	}
}
