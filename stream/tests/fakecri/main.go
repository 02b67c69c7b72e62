// fakecri answers just enough of the CRI runtime service for crictl's exec, attach and
// port-forward: Version, and Exec/Attach/PortForward with the URL read from a file at each call
// (the streaming server under test minted it). It exists for capsa-stream's crictl interop
// test; build it with Debian's golang-google-grpc-dev (GOPATH=/usr/share/gocode GO111MODULE=off).
// Requests are not decoded: each is appended, hex-encoded, to URLFILE.log.
//
//	fakecri SOCKET URLFILE
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io/ioutil"
	"net"
	"os"

	"google.golang.org/grpc"
)

// rawCodec passes protobuf bytes through untouched.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) String() string { return "proto" }

// field encodes a protobuf string field.
func field(num int, s string) []byte {
	b := []byte{byte(num<<3 | 2)}
	n := len(s)
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	b = append(b, byte(n))
	return append(b, s...)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fakecri SOCKET URLFILE")
		os.Exit(2)
	}
	socket, urlFile := os.Args[1], os.Args[2]
	handler := func(name string, reply func() []byte) grpc.MethodDesc {
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
				var req []byte
				if err := dec(&req); err != nil {
					return nil, err
				}
				f, err := os.OpenFile(urlFile+".log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err == nil {
					fmt.Fprintf(f, "%s %s\n", name, hex.EncodeToString(req))
					f.Close()
				}
				out := reply()
				return &out, nil
			},
		}
	}
	url := func() []byte {
		b, err := ioutil.ReadFile(urlFile)
		if err != nil {
			return nil
		}
		return field(1, string(b))
	}
	desc := grpc.ServiceDesc{
		ServiceName: "runtime.v1.RuntimeService",
		HandlerType: (*interface{})(nil),
		Methods: []grpc.MethodDesc{
			handler("Version", func() []byte {
				v := field(1, "0.1.0")
				v = append(v, field(2, "fakecri")...)
				v = append(v, field(3, "0")...)
				return append(v, field(4, "v1")...)
			}),
			handler("Exec", url),
			handler("Attach", url),
			handler("PortForward", url),
		},
		Metadata: "api.proto",
	}
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := grpc.NewServer(grpc.CustomCodec(rawCodec{}))
	var impl interface{} = struct{}{}
	s.RegisterService(&desc, impl)
	s.Serve(l)
}
