package wire

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// codecHeads are request heads that use every field, and the corners.
func codecHeads() map[string]*modulev1.RequestHead {
	return map[string]*modulev1.RequestHead{
		"empty": {},
		"typical": {
			Method: "GET", Path: "/hello/items/42", RawQuery: "x=1&y=%C3%A9", Headers: HeadersToProto(browserHeaders()),
			Host: "api.example.com", ContentLength: 0, ClientIp: "192.0.2.1", RequestId: "rid", CorrelationId: "cid",
			Route: "/hello/items/:id", PathParams: map[string]string{"id": "42"},
		},
		"every field": {
			Method: "POST", Path: "/a b/ü", RawQuery: "q", Host: "h:8085", ContentLength: -1,
			Headers: []*modulev1.Header{
				{Name: "X-Empty", Values: []string{""}}, {Name: "X-Two", Values: []string{"1", "2"}},
				{Name: "X-None"}, {Values: []string{"nameless"}},
			},
			ClientIp: "::1", RequestId: "r", CorrelationId: "c",
			Principal: &modulev1.Principal{
				Subject: "u1", Roles: []string{"admin", "user"}, Scopes: []string{"a:b"}, Method: "jwt",
				DisplayName: "Ada", Attributes: map[string]string{"k": "v", "": "empty key", "e": ""},
			},
			Route: "/a/*", PathParams: map[string]string{"*": "b/ü", "x": ""}, CallerModule: "other",
			RawPath: "/a%20b/%C3%BC", CallToken: "tok",
		},
		"big content length": {ContentLength: 1 << 40},
		"long header":        {Headers: []*modulev1.Header{{Name: "Cookie", Values: []string{strings.Repeat("c", 20000)}}}}, // a 3-byte length
		"empty map entries": {
			PathParams: map[string]string{"": ""},
			Principal:  &modulev1.Principal{Subject: "s", Attributes: map[string]string{"k": ""}},
		},
	}
}

// TestCodecAgreesWithProtobuf: for valid UTF-8 the hand-written codec and
// the generated one read each other's frames, and where no map has two
// entries (whose order protobuf leaves open) write the same bytes.
func TestCodecAgreesWithProtobuf(t *testing.T) {
	for name, head := range codecHeads() {
		t.Run(name, func(t *testing.T) {
			for _, f := range []*modulev1.HTTPRequestFrame{
				{Head: head}, {Head: head, Body: []byte("body"), End: true},
			} {
				ours, err := appendFrame(nil, f)
				if err != nil {
					t.Fatal(err)
				}
				var viaProto modulev1.HTTPRequestFrame
				if err := proto.Unmarshal(ours, &viaProto); err != nil {
					t.Fatalf("protobuf cannot read our frame: %v", err)
				}
				if !proto.Equal(&viaProto, f) {
					t.Errorf("protobuf read\n%v\nfrom our encoding of\n%v", &viaProto, f)
				}
				theirs, err := proto.Marshal(f)
				if err != nil {
					t.Fatal(err)
				}
				var viaOurs modulev1.HTTPRequestFrame
				if err := decodeRequestFrame(theirs, &viaOurs); err != nil {
					t.Fatalf("we cannot read protobuf's frame: %v", err)
				}
				if !proto.Equal(&viaOurs, f) {
					t.Errorf("we read\n%v\nfrom protobuf's encoding of\n%v", &viaOurs, f)
				}
				if len(head.GetPathParams()) <= 1 && len(head.GetPrincipal().GetAttributes()) <= 1 && !bytes.Equal(ours, theirs) {
					t.Errorf("encodings differ:\nours   %x\ntheirs %x", ours, theirs)
				}
			}
		})
	}
	for _, f := range []*modulev1.HTTPResponseFrame{
		{}, {End: true},
		{Head: &modulev1.ResponseHead{Status: 200, Headers: HeadersToProto(http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2"}})}, Body: []byte(`{}`), End: true},
		{Head: &modulev1.ResponseHead{Status: -1}}, // int32: sign-extended to ten bytes
		{Head: &modulev1.ResponseHead{}}, {Body: []byte("more")},
	} {
		ours, err := appendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%v: encodings differ:\nours   %x\ntheirs %x", f, ours, theirs)
		}
		var got modulev1.HTTPResponseFrame
		if err := decodeResponseFrame(theirs, &got); err != nil || !proto.Equal(&got, f) {
			t.Errorf("we read %v (%v) from protobuf's encoding of %v", &got, err, f)
		}
	}
}

// TestCodecCarriesAnyBytes: what HTTP allows but protobuf's strings do not
// (a header value in Latin-1, a path that unescapes to a lone byte) crosses
// the bridge as it came.
func TestCodecCarriesAnyBytes(t *testing.T) {
	head := &modulev1.RequestHead{
		Method: "GET", Path: "/items/\xe9", RawPath: "/items/%E9", PathParams: map[string]string{"id": "\xe9"},
		Headers: []*modulev1.Header{{Name: "X-Name", Values: []string{"caf\xe9"}}},
	}
	if _, err := proto.Marshal(head); err == nil {
		t.Fatal("protobuf marshalled invalid UTF-8: this codec's reason to exist is gone, or the test is wrong")
	}
	b, err := appendFrame(nil, &modulev1.HTTPRequestFrame{Head: head, End: true})
	if err != nil {
		t.Fatal(err)
	}
	var f modulev1.HTTPRequestFrame
	if err := decodeRequestFrame(b, &f); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(f.GetHead(), head) || !f.GetEnd() {
		t.Fatalf("got %q, want %q", f.GetHead(), head)
	}
	resp := &modulev1.HTTPResponseFrame{Head: &modulev1.ResponseHead{Status: 200, Headers: []*modulev1.Header{{Name: "Content-Disposition", Values: []string{"attachment; filename=\"caf\xe9.txt\""}}}}}
	b, err = appendFrame(nil, resp)
	if err != nil {
		t.Fatal(err)
	}
	var r modulev1.HTTPResponseFrame
	if err := decodeResponseFrame(b, &r); err != nil || !proto.Equal(&r, resp) {
		t.Fatalf("got %q (%v), want %q", &r, err, resp)
	}
}

// TestCodecHeadersDoNotShare: a handler that appends to one header's values
// does not write over the next header's.
func TestCodecHeadersDoNotShare(t *testing.T) {
	b, err := appendFrame(nil, &modulev1.HTTPRequestFrame{Head: &modulev1.RequestHead{Headers: []*modulev1.Header{
		{Name: "A", Values: []string{"a"}}, {Name: "B", Values: []string{"b"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var f modulev1.HTTPRequestFrame
	if err := decodeRequestFrame(b, &f); err != nil {
		t.Fatal(err)
	}
	hs := f.GetHead().GetHeaders()
	hs[0].Values = append(hs[0].Values, "x")
	if got := hs[1].GetValues(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("B's values became %q", got)
	}
}

// TestCodecRefusesTruncated: every prefix of a frame is either a shorter
// frame protobuf also reads the same way, or refused; none panics.
func TestCodecRefusesTruncated(t *testing.T) {
	for name, head := range codecHeads() {
		b, err := appendFrame(nil, &modulev1.HTTPRequestFrame{Head: head, Body: []byte("xyz"), End: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			var ours, theirs modulev1.HTTPRequestFrame
			oerr := decodeRequestFrame(b[:i], &ours)
			perr := proto.Unmarshal(b[:i], &theirs)
			if (oerr == nil) != (perr == nil) {
				t.Fatalf("%s, %d of %d bytes: we said %v, protobuf %v", name, i, len(b), oerr, perr)
			}
			if oerr == nil && !proto.Equal(&ours, &theirs) {
				t.Fatalf("%s, %d of %d bytes: we read %v, protobuf %v", name, i, len(b), &ours, &theirs)
			}
		}
	}
}

// FuzzDecodeRequestHead: on any input the decoder returns or fails without
// panicking, and where protobuf reads a head, it reads the same one.
func FuzzDecodeRequestHead(f *testing.F) {
	for _, head := range codecHeads() {
		f.Add(appendRequestHead(nil, head))
	}
	f.Add([]byte{0x22, 0x02, 0x12, 0x05}) // a header whose value overruns it
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, oerr := decodeRequestHead(b)
		var theirs modulev1.RequestHead
		if perr := proto.Unmarshal(b, &theirs); perr != nil {
			return // not UTF-8, or malformed: ours may read the bytes
		}
		dropUnknown(theirs.ProtoReflect()) // protobuf keeps them, the codec skips them
		if oerr != nil {
			t.Fatalf("protobuf reads %x, we refuse it: %v", b, oerr)
		}
		if !proto.Equal(ours, &theirs) {
			t.Fatalf("from %x we read %v, protobuf %v", b, ours, &theirs)
		}
	})
}

// dropUnknown clears the unknown fields protobuf kept in m and the messages
// in it.
func dropUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				dropUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil:
			dropUnknown(v.Message())
		}
		return true
	})
}

// TestBridgeCarriesAnyBytes: end to end over every transport, a request
// protobuf's strings could not carry (a path that unescapes to a lone byte,
// a header value in Latin-1) reaches the handler as sent, and its answer
// comes back whole.
func TestBridgeCarriesAnyBytes(t *testing.T) {
	eachTransport(t, func(t *testing.T, transport string) {
		core := bridge(t, transport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Got", r.Header.Get("X-Name"))
			io.WriteString(w, r.URL.Path)
		}))
		req, err := http.NewRequest("GET", core.URL+"/items/%E9", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Name", "caf\xe9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "/items/\xe9" || resp.Header.Get("X-Got") != "caf\xe9" {
			t.Fatalf("got %d %q, X-Got %q", resp.StatusCode, body, resp.Header.Get("X-Got"))
		}
	})
}
