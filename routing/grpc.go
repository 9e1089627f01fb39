package routing

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrAPIReadOnly is the message a refused gRPC call gets.
const ErrAPIReadOnly = "dmvpnd: the BGP API is read-only; set bgp.grpc_write: true"

// readOnlyMethod reports whether a gRPC method only reads: GoBGP's List*,
// Get* and Watch* calls ("gobgp neighbor", "gobgp global rib",
// "gobgp neighbor X adj-in", "gobgp monitor").
func readOnlyMethod(fullMethod string) bool {
	m := path.Base(fullMethod)
	return strings.HasPrefix(m, "List") || strings.HasPrefix(m, "Get") || strings.HasPrefix(m, "Watch")
}

// readOnlyOptions are the gRPC server options that refuse every modifying
// call with PermissionDenied.
func readOnlyOptions() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !readOnlyMethod(info.FullMethod) {
			return nil, status.Error(codes.PermissionDenied, ErrAPIReadOnly)
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !readOnlyMethod(info.FullMethod) {
			return status.Error(codes.PermissionDenied, ErrAPIReadOnly)
		}
		return h(srv, ss)
	}
	return []grpc.ServerOption{grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream)}
}

// secureAPISocket gives the unix API socket mode 0660 and the configured
// group. The socket's directory should not be world-accessible (GoBGP
// creates the socket with the process umask before this runs).
func (s *Speaker) secureAPISocket() error {
	p, ok := strings.CutPrefix(s.cfg.API, "unix://")
	if !ok {
		return nil
	}
	if err := os.Chmod(p, 0o660); err != nil {
		return fmt.Errorf("routing: api socket: %w", err)
	}
	if s.cfg.APIGroup > 0 {
		if err := os.Chown(p, -1, s.cfg.APIGroup); err != nil {
			return fmt.Errorf("routing: api socket group: %w", err)
		}
	}
	return nil
}
