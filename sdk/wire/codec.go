package wire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// The codec of the HTTP frames on the direct and multiplexed paths: the
// messages of module.proto (HTTPRequestFrame, HTTPResponseFrame and the
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
	switch f := m.(type) {
	case *modulev1.HTTPRequestFrame:
		if h := f.GetHead(); h != nil {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sizeRequestHead(h)))
			b = appendRequestHead(b, h)
		}
		return appendBodyEnd(b, f.GetBody(), f.GetEnd()), nil
	case *modulev1.HTTPResponseFrame:
		if h := f.GetHead(); h != nil {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(sizeResponseHead(h)))
			b = appendResponseHead(b, h)
		}
		return appendBodyEnd(b, f.GetBody(), f.GetEnd()), nil
	}
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

func appendBodyEnd(b, body []byte, end bool) []byte {
	if len(body) > 0 {
		b = protowire.AppendTag(b, bodyField, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	if end {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

// sizeString is the size of a string field, 0 when it is empty (proto3
// writes no default value).
func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// sizeMessage is the size of a message field whose message is n bytes.
func sizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendMessageHeader(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func sizeHeader(h *modulev1.Header) int {
	n := sizeString(1, h.GetName())
	for _, v := range h.GetValues() {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(v)) // repeated: empty values too
	}
	return n
}

func sizeHeaders(num protowire.Number, hs []*modulev1.Header) int {
	n := 0
	for _, h := range hs {
		n += sizeMessage(num, sizeHeader(h))
	}
	return n
}

func appendHeaders(b []byte, num protowire.Number, hs []*modulev1.Header) []byte {
	for _, h := range hs {
		b = appendMessageHeader(b, num, sizeHeader(h))
		b = appendString(b, 1, h.GetName())
		for _, v := range h.GetValues() {
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	return b
}

func sizeStrings(num protowire.Number, ss []string) int {
	n := 0
	for _, s := range ss {
		n += protowire.SizeTag(num) + protowire.SizeBytes(len(s))
	}
	return n
}

func appendStrings(b []byte, num protowire.Number, ss []string) []byte {
	for _, s := range ss {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// A map<string, string> is a repeated message of key (1) and value (2),
// both written even when empty, as protobuf writes them.
func sizeEntry(k, v string) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
}

func sizeMap(num protowire.Number, m map[string]string) int {
	n := 0
	for k, v := range m {
		n += sizeMessage(num, sizeEntry(k, v))
	}
	return n
}

func appendMap(b []byte, num protowire.Number, m map[string]string) []byte {
	for k, v := range m {
		b = appendMessageHeader(b, num, sizeEntry(k, v))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

func sizePrincipal(p *modulev1.Principal) int {
	return sizeString(1, p.GetSubject()) + sizeStrings(2, p.GetRoles()) + sizeStrings(3, p.GetScopes()) +
		sizeString(4, p.GetMethod()) + sizeString(5, p.GetDisplayName()) + sizeMap(6, p.GetAttributes())
}

func appendPrincipal(b []byte, p *modulev1.Principal) []byte {
	b = appendString(b, 1, p.GetSubject())
	b = appendStrings(b, 2, p.GetRoles())
	b = appendStrings(b, 3, p.GetScopes())
	b = appendString(b, 4, p.GetMethod())
	b = appendString(b, 5, p.GetDisplayName())
	return appendMap(b, 6, p.GetAttributes())
}

func sizeRequestHead(h *modulev1.RequestHead) int {
	n := sizeString(1, h.GetMethod()) + sizeString(2, h.GetPath()) + sizeString(3, h.GetRawQuery()) +
		sizeHeaders(4, h.GetHeaders()) + sizeString(5, h.GetHost())
	if cl := h.GetContentLength(); cl != 0 {
		n += protowire.SizeTag(6) + protowire.SizeVarint(uint64(cl))
	}
	n += sizeString(7, h.GetClientIp()) + sizeString(8, h.GetRequestId()) + sizeString(9, h.GetCorrelationId())
	if p := h.GetPrincipal(); p != nil {
		n += sizeMessage(10, sizePrincipal(p))
	}
	return n + sizeString(11, h.GetRoute()) + sizeMap(12, h.GetPathParams()) + sizeString(13, h.GetCallerModule()) +
		sizeString(14, h.GetRawPath()) + sizeString(15, h.GetCallToken())
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
		b = appendMessageHeader(b, 10, sizePrincipal(p))
		b = appendPrincipal(b, p)
	}
	b = appendString(b, 11, h.GetRoute())
	b = appendMap(b, 12, h.GetPathParams())
	b = appendString(b, 13, h.GetCallerModule())
	b = appendString(b, 14, h.GetRawPath())
	return appendString(b, 15, h.GetCallToken())
}

func sizeResponseHead(h *modulev1.ResponseHead) int {
	n := 0
	if s := h.GetStatus(); s != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(int64(s)))
	}
	return n + sizeHeaders(2, h.GetHeaders())
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
	hd := d.sub()
	first := len(hs.vals)
	var name string
	for {
		num, typ, ok := hd.next()
		if !ok {
			break
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			name = hd.str()
		case num == 2 && typ == protowire.BytesType:
			hs.vals = append(hs.vals, hd.str())
		default:
			hd.skip(num, typ)
		}
	}
	if hd.err != nil {
		d.err = hd.err
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
	e := d.sub()
	var k, v string
	for {
		num, typ, ok := e.next()
		if !ok {
			break
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			k = e.str()
		case num == 2 && typ == protowire.BytesType:
			v = e.str()
		default:
			e.skip(num, typ)
		}
	}
	if e.err != nil {
		d.err = e.err
		return
	}
	if *m == nil {
		*m = make(map[string]string)
	}
	(*m)[k] = v
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
func decodeRequestFrame(b []byte, f *modulev1.HTTPRequestFrame) error {
	head, body, end, err := splitFrame(b)
	if err != nil {
		return err
	}
	f.Head, f.Body, f.End = nil, cloneBody(body), end
	if head != nil {
		f.Head, err = decodeRequestHead(head)
	}
	return err
}

// decodeResponseFrame decodes a whole response frame's message into f,
// copying the body.
func decodeResponseFrame(b []byte, f *modulev1.HTTPResponseFrame) error {
	head, body, end, err := splitFrame(b)
	if err != nil {
		return err
	}
	f.Head, f.Body, f.End = nil, cloneBody(body), end
	if head != nil {
		f.Head, err = decodeResponseHead(head)
	}
	return err
}

// cloneBody copies a frame's body, nil when empty as protobuf leaves it.
func cloneBody(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
