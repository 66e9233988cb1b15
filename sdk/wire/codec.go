package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// The codec of the HTTP frames on every transport (gRPC's through
// frameCodec, wire.go): the messages of module.proto (HTTPRequestFrame, HTTPResponseFrame and the
// heads in them) in protobuf's wire format, encoded and decoded by hand.
//
// Two reasons not to use the generated code for them:
//
//   - HTTP carries bytes where the proto says string. A header value may
//     hold any byte but controls (RFC 9110's obs-text), and a path unescapes
//     to any bytes ("/items/%E9"). protobuf refuses a string field that is
//     not UTF-8, both to marshal and to unmarshal, so such a request failed
//     on the bridge, where the same handler in-process served it. This codec
//     carries every string field as the bytes it holds; for valid UTF-8 its
//     encoding is protobuf's, byte for byte in the same field order (a map's
//     entries in the map's order, which protobuf leaves open too).
//   - Every request pays the decoding twice (the head on the module, the
//     answer's head on the core), and protobuf's table-driven decoder
//     allocates each string, each header and each header's values apart.
//     decodeRequestHead copies the head once into one string and slices
//     every string field from it, and gives all the headers one array and
//     all their values another. A head's strings so share one allocation:
//     a handler that keeps one of them keeps the head's bytes (at most a
//     frame) alive with it.
//
// Unknown fields are skipped. A field given twice is taken as protobuf
// takes it: a scalar keeps its last value, a repeated field or a map gets
// both, and a head's principal merges. A frame whose head comes twice
// keeps the last (splitFrame), where protobuf would merge the two: no
// encoder writes one twice.

// errBadHead is a head that is not a well-formed message.
var errBadHead = errors.New("wire: malformed frame head")

// appendFrame appends m's encoding to b: by hand for the HTTP frames, by
// protobuf for anything else.
func appendFrame(b []byte, m proto.Message) ([]byte, error) {
	b, body, end, ok := appendFrameHead(b, m)
	if !ok {
		return proto.MarshalOptions{}.MarshalAppend(b, m)
	}
	if len(body) > 0 {
		b = protowire.AppendTag(b, bodyField, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return appendEnd(b, end), nil
}

// appendFrameHead appends the head of m, an HTTP frame, and returns the
// frame's body and end flag for the caller to write in its order (ok false
// when m is another message: nothing is appended).
func appendFrameHead(b []byte, m proto.Message) (out, body []byte, end, ok bool) {
	switch f := m.(type) {
	case *modulev1.HTTPRequestFrame:
		if h := f.GetHead(); h != nil {
			b = appendMessage(b, 1, func(b []byte) []byte { return appendRequestHead(b, h) })
		}
		return b, f.GetBody(), f.GetEnd(), true
	case *modulev1.HTTPResponseFrame:
		if h := f.GetHead(); h != nil {
			b = appendMessage(b, 1, func(b []byte) []byte { return appendResponseHead(b, h) })
		}
		return b, f.GetBody(), f.GetEnd(), true
	}
	return b, nil, false, false
}

// appendEnd appends a frame's end flag (field 3), nothing when false.
func appendEnd(b []byte, end bool) []byte {
	if !end {
		return b
	}
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, 1)
}

// appendMessage appends field num holding the message fill appends, its
// length written in front once known: one byte is kept for it, as most of
// these messages (a header, a map entry) are under 128 bytes, and a longer
// one is moved up to make room. The message is so encoded in one pass,
// where computing its size first would walk it twice (and its headers once
// more for each message they are in).
func appendMessage(b []byte, num protowire.Number, fill func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b = fill(append(b, 0))
	n := len(b) - at - 1
	if k := protowire.SizeVarint(uint64(n)); k > 1 {
		b = append(b, make([]byte, k-1)...)
		copy(b[at+k:], b[at+1:at+1+n])
	}
	protowire.AppendVarint(b[at:at], uint64(n))
	return b
}

// appendString appends a string field, nothing when it is empty (proto3
// writes no default value).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendStrings appends a repeated string field, empty strings included.
func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

func appendHeaders(b []byte, num protowire.Number, hs []*modulev1.Header) []byte {
	for _, h := range hs {
		b = appendMessage(b, num, func(b []byte) []byte {
			return appendStrings(appendString(b, 1, h.GetName()), 2, h.GetValues())
		})
	}
	return b
}

// appendMap appends a map<string, string>: a repeated message of key (1)
// and value (2), both written even when empty, as protobuf writes them.
func appendMap(b []byte, num protowire.Number, m map[string]string) []byte {
	for k, v := range m {
		b = appendMessage(b, num, func(b []byte) []byte {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			return protowire.AppendString(b, v)
		})
	}
	return b
}

func appendPrincipal(b []byte, p *modulev1.Principal) []byte {
	b = appendString(b, 1, p.GetSubject())
	b = appendStrings(b, 2, p.GetRoles())
	b = appendStrings(b, 3, p.GetScopes())
	b = appendString(b, 4, p.GetMethod())
	b = appendString(b, 5, p.GetDisplayName())
	return appendMap(b, 6, p.GetAttributes())
}

func appendRequestHead(b []byte, h *modulev1.RequestHead) []byte {
	b = appendString(b, 1, h.GetMethod())
	b = appendString(b, 2, h.GetPath())
	b = appendString(b, 3, h.GetRawQuery())
	b = appendHeaders(b, 4, h.GetHeaders())
	b = appendString(b, 5, h.GetHost())
	if cl := h.GetContentLength(); cl != 0 {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(cl))
	}
	b = appendString(b, 7, h.GetClientIp())
	b = appendString(b, 8, h.GetRequestId())
	b = appendString(b, 9, h.GetCorrelationId())
	if p := h.GetPrincipal(); p != nil {
		b = appendMessage(b, 10, func(b []byte) []byte { return appendPrincipal(b, p) })
	}
	b = appendString(b, 11, h.GetRoute())
	b = appendMap(b, 12, h.GetPathParams())
	b = appendString(b, 13, h.GetCallerModule())
	b = appendString(b, 14, h.GetRawPath())
	return appendString(b, 15, h.GetCallToken())
}

func appendResponseHead(b []byte, h *modulev1.ResponseHead) []byte {
	if s := h.GetStatus(); s != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(s))) // int32: sign-extended, as protobuf does
	}
	return appendHeaders(b, 2, h.GetHeaders())
}

// decoder reads the fields of a message: buf[pos:end], whose bytes s holds
// too, so that a string field is a slice of s rather than a copy.
type decoder struct {
	s        string
	buf      []byte
	pos, end int
	err      error
}

func newDecoder(b []byte) decoder { return decoder{s: string(b), buf: b, end: len(b)} }

// next returns the next field's number and wire type; false at the end of
// the message or at an error.
func (d *decoder) next() (protowire.Number, protowire.Type, bool) {
	if d.pos >= d.end || d.err != nil {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(d.buf[d.pos:d.end])
	if n < 0 {
		d.err = protowire.ParseError(n)
		return 0, 0, false
	}
	d.pos += n
	return num, typ, true
}

// span reads a length-delimited value and returns where it lies.
func (d *decoder) span() (start, end int) {
	v, n := protowire.ConsumeVarint(d.buf[d.pos:d.end])
	if n < 0 {
		d.err = protowire.ParseError(n)
		return d.pos, d.pos
	}
	if v > uint64(d.end-d.pos-n) {
		d.err = errBadHead
		return d.pos, d.pos
	}
	start = d.pos + n
	d.pos = start + int(v)
	return start, d.pos
}

func (d *decoder) str() string {
	start, end := d.span()
	return d.s[start:end]
}

// sub is a decoder of the message that is the next value.
func (d *decoder) sub() decoder {
	start, end := d.span()
	return decoder{s: d.s, buf: d.buf, pos: start, end: end, err: d.err}
}

func (d *decoder) varint() uint64 {
	v, n := protowire.ConsumeVarint(d.buf[d.pos:d.end])
	if n < 0 {
		d.err = protowire.ParseError(n)
		return 0
	}
	d.pos += n
	return v
}

// skip passes over a field this codec does not know, or one of a known
// number with another wire type, which protobuf takes for unknown too.
func (d *decoder) skip(num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, d.buf[d.pos:d.end])
	if n < 0 {
		d.err = protowire.ParseError(n)
		return
	}
	d.pos += n
}

// headerSet holds the headers of one head: one array for the headers, one
// for their pointers and one for all their values, sized by a first pass.
type headerSet struct {
	hs   []modulev1.Header
	ptrs []*modulev1.Header
	vals []string
}

// count sizes the arrays for the headers, field num of the message d reads.
func (hs *headerSet) count(d decoder, num protowire.Number) {
	nh, nv := 0, 0
	for {
		n, typ, ok := d.next()
		if !ok {
			break
		}
		if n != num || typ != protowire.BytesType {
			d.skip(n, typ)
			continue
		}
		nh++
		for h := d.sub(); ; {
			n, typ, ok := h.next()
			if !ok {
				break
			}
			if n == 2 && typ == protowire.BytesType {
				nv++
			}
			h.skip(n, typ)
		}
	}
	if nh > 0 {
		hs.hs = make([]modulev1.Header, 0, nh)
		hs.ptrs = make([]*modulev1.Header, 0, nh)
		hs.vals = make([]string, 0, nv)
	}
}

// decode decodes one header. Each header's values are a slice of vals
// capped at its end, so that appending to one copies it rather than
// overwriting the next header's.
func (hs *headerSet) decode(d *decoder) {
	first := len(hs.vals)
	var name string
	if !d.twoStrings(func(s string) { name = s }, func(s string) { hs.vals = append(hs.vals, s) }) {
		return
	}
	var values []string
	if len(hs.vals) > first {
		values = hs.vals[first:len(hs.vals):len(hs.vals)]
	}
	hs.hs = append(hs.hs, modulev1.Header{Name: name, Values: values})
	hs.ptrs = append(hs.ptrs, &hs.hs[len(hs.hs)-1])
}

// entry decodes one map<string, string> entry into *m.
func (d *decoder) entry(m *map[string]string) {
	var k, v string
	if !d.twoStrings(func(s string) { k = s }, func(s string) { v = s }) {
		return
	}
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[k] = v
}

// twoStrings reads the message that is the next value, whose fields are
// the strings 1 and 2 (a Header, a map entry), handing each occurrence to
// one or two. False when the message is malformed (d.err is set).
func (d *decoder) twoStrings(one, two func(string)) bool {
	sd := d.sub()
	for {
		num, typ, ok := sd.next()
		if !ok {
			break
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			one(sd.str())
		case num == 2 && typ == protowire.BytesType:
			two(sd.str())
		default:
			sd.skip(num, typ)
		}
	}
	d.err = sd.err
	return d.err == nil
}

// principal decodes a Principal into p, a new one when p is nil: a second
// principal field merges into the first, as protobuf merges a message.
func (d *decoder) principal(p *modulev1.Principal) *modulev1.Principal {
	pd := d.sub()
	if p == nil {
		p = &modulev1.Principal{}
	}
	for {
		num, typ, ok := pd.next()
		if !ok {
			break
		}
		if typ != protowire.BytesType || num < 1 || num > 6 {
			pd.skip(num, typ)
			continue
		}
		switch num {
		case 1:
			p.Subject = pd.str()
		case 2:
			p.Roles = append(p.Roles, pd.str())
		case 3:
			p.Scopes = append(p.Scopes, pd.str())
		case 4:
			p.Method = pd.str()
		case 5:
			p.DisplayName = pd.str()
		case 6:
			pd.entry(&p.Attributes)
		}
	}
	if pd.err != nil {
		d.err = pd.err
	}
	return p
}

// decodeRequestHead decodes a RequestHead; it keeps nothing of b.
func decodeRequestHead(b []byte) (*modulev1.RequestHead, error) {
	d := newDecoder(b)
	var hs headerSet
	hs.count(d, 4)
	h := &modulev1.RequestHead{}
	for {
		num, typ, ok := d.next()
		if !ok {
			break
		}
		want := protowire.BytesType
		if num == 6 {
			want = protowire.VarintType
		}
		if typ != want || num < 1 || num > 15 {
			d.skip(num, typ)
			continue
		}
		switch num {
		case 1:
			h.Method = d.str()
		case 2:
			h.Path = d.str()
		case 3:
			h.RawQuery = d.str()
		case 4:
			hs.decode(&d)
		case 5:
			h.Host = d.str()
		case 6:
			h.ContentLength = int64(d.varint())
		case 7:
			h.ClientIp = d.str()
		case 8:
			h.RequestId = d.str()
		case 9:
			h.CorrelationId = d.str()
		case 10:
			h.Principal = d.principal(h.Principal)
		case 11:
			h.Route = d.str()
		case 12:
			d.entry(&h.PathParams)
		case 13:
			h.CallerModule = d.str()
		case 14:
			h.RawPath = d.str()
		case 15:
			h.CallToken = d.str()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("wire: request head: %w", d.err)
	}
	h.Headers = hs.ptrs
	return h, nil
}

// decodeResponseHead decodes a ResponseHead; it keeps nothing of b.
func decodeResponseHead(b []byte) (*modulev1.ResponseHead, error) {
	d := newDecoder(b)
	var hs headerSet
	hs.count(d, 2)
	h := &modulev1.ResponseHead{}
	for {
		num, typ, ok := d.next()
		if !ok {
			break
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			h.Status = int32(d.varint())
		case num == 2 && typ == protowire.BytesType:
			hs.decode(&d)
		default:
			d.skip(num, typ)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("wire: response head: %w", d.err)
	}
	h.Headers = hs.ptrs
	return h, nil
}

// decodeRequestFrame decodes a whole request frame's message into f,
// copying the body.
func decodeRequestFrame(b []byte, f *modulev1.HTTPRequestFrame) (err error) {
	f.Head, f.Body, f.End, err = decodeWhole(b, decodeRequestHead)
	return err
}

// decodeResponseFrame decodes a whole response frame's message into f,
// copying the body.
func decodeResponseFrame(b []byte, f *modulev1.HTTPResponseFrame) (err error) {
	f.Head, f.Body, f.End, err = decodeWhole(b, decodeResponseHead)
	return err
}

// decodeWhole splits a frame's message, decodes its head (nil when it has
// none) and copies its body.
func decodeWhole[H any](b []byte, decodeHead func([]byte) (*H, error)) (*H, []byte, bool, error) {
	head, body, end, err := splitFrame(b)
	if err != nil {
		return nil, nil, false, err
	}
	var h *H
	if head != nil {
		if h, err = decodeHead(head); err != nil {
			return nil, nil, false, err
		}
	}
	return h, cloneBody(body), end, nil
}

// cloneBody copies a frame's body, nil when empty as protobuf leaves it.
func cloneBody(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
