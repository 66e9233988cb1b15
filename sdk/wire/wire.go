// Package wire is the protocol glue between the chacc core and a module
// process: the go-plugin handshake and plugin definition, and the two halves of
// the HTTP bridge (Forward on the calling side, NewHTTPServer on the module
// side). The core, the SDK and sdktest share it so that all three speak exactly
// the same protocol. Module authors use package sdk instead.
package wire

import (
	"context"
	"math"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	modulev1 "github.com/chacc/chacc/proto/gen/chacc/module/v1"
)

// HostAPIVersion is the version of the Host contract the core speaks, sent in
// Configure.
const HostAPIVersion = 1

// PluginName is the single plugin a module process serves.
const PluginName = "module"

// ChunkSize is the largest body chunk carried in one frame, but for the
// request body after its first chunk on the direct path, which goes up in
// frames of up to bigChunkSize: a large upload costs fewer frames, a small
// request no more memory.
const ChunkSize = 32 << 10

// bigChunkSize is the largest request body chunk after the first on the
// direct path.
const bigChunkSize = 256 << 10

// MaxMessageBytes bounds one gRPC message (a Host.Call body travels whole).
const MaxMessageBytes = 64 << 20

// Handshake is the go-plugin handshake shared by core and modules. A module
// binary run by hand, without the magic cookie, refuses to start.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CHACC_MODULE_COOKIE",
	MagicCookieValue: "b3f1c7e2-chacc-module-v1",
}

// ModuleServer is what a module process serves.
type ModuleServer interface {
	modulev1.ModuleServer
	modulev1.HTTPServer
}

// Plugin is the go-plugin definition of a chacc module. The module side sets
// NewServer; the core side leaves it nil and receives a [*Conn] from Dispense.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	// NewServer builds the module's servers once go-plugin hands over the broker.
	NewServer func(broker *plugin.GRPCBroker) ModuleServer
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers the module's services.
func (p *Plugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	srv := p.NewServer(broker)
	modulev1.RegisterModuleServer(s, srv)
	modulev1.RegisterHTTPServer(s, srv)
	return nil
}

// GRPCClient returns a [*Conn] to the module.
func (p *Plugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &Conn{
		Module: modulev1.NewModuleClient(cc),
		HTTP:   modulev1.NewHTTPClient(cc),
		Broker: broker,
		done:   ctx.Done(),
	}, nil
}

// Conn is the core's connection to one module process.
type Conn struct {
	Module modulev1.ModuleClient
	HTTP   modulev1.HTTPClient
	Broker *plugin.GRPCBroker
	done   <-chan struct{}
}

// Done is closed when the module process has exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// ServerOptions are the gRPC server options both sides use.
func ServerOptions(opts ...grpc.ServerOption) []grpc.ServerOption {
	return append(opts,
		grpc.ForceServerCodecV2(frameCodec{}),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.MaxConcurrentStreams(math.MaxUint32),
	)
}

// DialOptions are the gRPC dial options both sides use.
func DialOptions(opts ...grpc.DialOption) []grpc.DialOption {
	return append(opts, grpc.WithDefaultCallOptions(
		grpc.ForceCodecV2(frameCodec{}),
		grpc.MaxCallRecvMsgSize(MaxMessageBytes),
		grpc.MaxCallSendMsgSize(MaxMessageBytes),
	))
}

// frameCodec is gRPC's protobuf codec, but for the HTTP frames: those go
// through the bridge's own codec (codec.go) on gRPC streams too, so that
// every transport carries the same requests (protobuf refuses a string
// field that is not UTF-8, and HTTP allows one).
type frameCodec struct{}

func (frameCodec) Name() string { return protoCodec.Name() }

func (frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch f := v.(type) {
	case *modulev1.HTTPRequestFrame, *modulev1.HTTPResponseFrame:
		b, err := appendFrame(nil, f.(proto.Message))
		return mem.BufferSlice{mem.SliceBuffer(b)}, err
	}
	return protoCodec.Marshal(v)
}

func (frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch f := v.(type) {
	case *modulev1.HTTPRequestFrame:
		return decodeRequestFrame(materialize(data), f)
	case *modulev1.HTTPResponseFrame:
		return decodeResponseFrame(materialize(data), f)
	}
	return protoCodec.Unmarshal(data, v)
}

// materialize is data's bytes, copied only when they are in pieces: the
// decoders copy what they keep.
func materialize(data mem.BufferSlice) []byte {
	if len(data) == 1 {
		return data[0].ReadOnlyData()
	}
	return data.Materialize()
}

// protoCodec is gRPC's own codec, which frameCodec hands everything else
// (registered by its package's init, which runs before this one's).
var protoCodec = encoding.GetCodecV2(grpcproto.Name)
