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
			require.NoError(t, r.readFrame(&got))
		}
		assert.True(t, proto.Equal(want, &got), "frame %d", i)
		assert.Equal(t, want.GetBody(), got.GetBody(), "frame %d", i) // before the next read
	}
	var got modulev1.HTTPResponseFrame
	require.NoError(t, r.readResponse(&got))
	assert.Equal(t, "x", string(got.GetBody()))
	assert.True(t, got.GetEnd())
}
