package wire

import (
	"context"
	"net/http"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// hopHeaders are connection-scoped and never cross the bridge.
var hopHeaders = map[string]bool{
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// HeadersToProto converts an http.Header, dropping hop-by-hop headers.
func HeadersToProto(h http.Header) []*modulev1.Header {
	out := make([]*modulev1.Header, 0, len(h))
	hs := make([]modulev1.Header, len(h)) // one allocation for all of them
	for name, values := range h {
		if hopHeaders[name] {
			continue
		}
		kv := &hs[len(out)]
		kv.Name, kv.Values = name, values
		out = append(out, kv)
	}
	return out
}

// HeadersFromProto converts headers back into an http.Header.
func HeadersFromProto(hs []*modulev1.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, kv := range hs {
		name := http.CanonicalHeaderKey(kv.GetName())
		if hopHeaders[name] {
			continue
		}
		h[name] = append(h[name], kv.GetValues()...)
	}
	return h
}

type headKey struct{}

// WithHead returns a context carrying the request head a module received.
func WithHead(ctx context.Context, head *modulev1.RequestHead) context.Context {
	return context.WithValue(ctx, headKey{}, head)
}

// HeadFrom returns the request head carried by ctx, or nil.
func HeadFrom(ctx context.Context) *modulev1.RequestHead {
	head, _ := ctx.Value(headKey{}).(*modulev1.RequestHead)
	return head
}
