package wire

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// The hot paths of the bridge, one at a time. The whole round trip through
// sdktest is sdktest's BenchmarkGET; the bridge under load is measured by
// the bench program (make bench). The auth check is core/auth's to
// benchmark (not written yet).

// browserHeaders are the headers of a typical API request.
func browserHeaders() http.Header {
	return http.Header{
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-GB,en;q=0.9"},
		"Authorization":   {"Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"},
		"X-Request-Id":    {"3f2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d"},
		"Connection":      {"keep-alive"},
	}
}

// BenchmarkRequestConversion is the request's trip across the bridge minus
// the transport: the core's head from an http.Request, its frame encoded and
// decoded, and the module's http.Request from the head.
func BenchmarkRequestConversion(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/hello/items/42?x=1", nil)
	r.Header = browserHeaders()
	fc := &frameConn{}
	b.ReportAllocs()
	for b.Loop() {
		head := &modulev1.RequestHead{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Headers: HeadersToProto(r.Header),
			Host: r.Host, ContentLength: r.ContentLength, ClientIp: "192.0.2.1", RequestId: "rid", CorrelationId: "cid",
			Route: "/hello/items/:id", PathParams: map[string]string{"id": "42"},
		}
		if err := fc.encode(&modulev1.HTTPRequestFrame{Head: head, End: true}); err != nil {
			b.Fatal(err)
		}
		var frame modulev1.HTTPRequestFrame
		if err := decodeFrame(fc.wbuf, &frame); err != nil {
			b.Fatal(err)
		}
		if _, err := newRequest(context.Background(), frame.GetHead(), http.NoBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBestMatch matches a path against a module's declared routes, as
// the core does for every request.
func BenchmarkBestMatch(b *testing.B) {
	var ps []Pattern
	for _, r := range [][2]string{
		{"GET", "/hello/ping"}, {"POST", "/hello/echo"}, {"GET", "/hello/sse"}, {"POST", "/hello/events"},
		{"GET", "/hello/events"}, {"POST", "/hello/items"}, {"GET", "/hello/items/:id"}, {"GET", "/hello/relay"},
		{"GET", "/hello/whoami"}, {"GET", "/hello/files/*"},
	} {
		ps = append(ps, CompilePattern(r[0], r[1]))
	}
	b.ReportAllocs()
	for b.Loop() {
		if i, _ := BestMatch(ps, "GET", "/hello/items/42"); i != 6 {
			b.Fatal(i)
		}
	}
}

// BenchmarkDirectRoundTrip is one small exchange over the direct socket,
// both halves, one at a time (latency, not throughput).
func BenchmarkDirectRoundTrip(b *testing.B) {
	ln, err := net.Listen("unix", filepath.Join(b.TempDir(), "s"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		_ = ServeDirect(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"pong":true}`)
		}), slog.New(slog.DiscardHandler))
	}()
	client := NewDirectClient(ln.Addr().String())
	defer client.Close()
	head := &modulev1.RequestHead{Method: "GET", Path: "/hello/ping", Headers: HeadersToProto(browserHeaders())}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		if err := client.Forward(context.Background(), head, nil, rec); err != nil || rec.Code != 200 {
			b.Fatal(err, rec.Code)
		}
	}
}

// BenchmarkEcho1MiB is a 1 MiB POST streamed back as it arrives (read 32
// KiB, write, flush), through an HTTP server that forwards the way the core
// does, against the same handler served by that HTTP server itself.
func BenchmarkEcho1MiB(b *testing.B) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	run := func(b *testing.B, url string) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			resp, err := http.Post(url+"/echo", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(len(payload)) {
				b.Fatalf("echoed %d bytes", n)
			}
		}
	}
	b.Run("inprocess", func(b *testing.B) {
		s := httptest.NewServer(echo)
		defer s.Close()
		run(b, s.URL)
	})
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { run(b, bridge(b, tr, echo).URL) })
	}
}
