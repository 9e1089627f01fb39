package routing

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ErrTCPMD5Unsupported is returned by Speaker.Start when a password is
// configured but a listener cannot sign segments (RFC 2385, TCP_MD5SIG).
// It wraps the setsockopt error: ENOPROTOOPT without CONFIG_TCP_MD5SIG,
// or for an MPTCP listener (ErrMPTCPListener).
var ErrTCPMD5Unsupported = errors.New("routing: TCP MD5 password configured, but the kernel does not support TCP_MD5SIG (CONFIG_TCP_MD5SIG)")

// ErrMPTCPListener explains ErrTCPMD5Unsupported when the kernel has TCP
// MD5 but Go made the listener MPTCP (IPPROTO_MPTCP, Go 1.24+ with
// GODEBUG multipathtcp=1 or 2, the default where the kernel has MPTCP),
// which refuses TCP_MD5SIG with ENOPROTOOPT. go.mod sets multipathtcp=0
// for dmvpnd's binaries and tests; GoBGP's listener comes from the same
// net.ListenConfig.
var ErrMPTCPListener = errors.New("the listener is MPTCP (GODEBUG multipathtcp), which has no TCP_MD5SIG")

// passwords reports whether any session has a TCP MD5 password.
func (c Config) passwords() bool {
	if c.Password != "" {
		return true
	}
	for _, n := range append(append([]Neighbor(nil), c.Hub.Peers...), c.Spoke.Hubs...) {
		if n.Password != "" {
			return true
		}
	}
	return false
}

// checkTCPMD5 sets a TCP MD5 key on a throwaway listener made as GoBGP
// makes its own (net.Listen, so an MPTCP one when Go would make GoBGP's
// MPTCP), in the forms GoBGP uses: per address (static neighbors, the
// dialer) and, on a hub, per prefix (TCP_MD5SIG_EXT, the dynamic range on
// the listener). GoBGP itself only logs a warning when it cannot set the
// key on its listener and then accepts sessions without a signature
// (pkg/server/server.go AddPeer and AddDynamicNeighbor: "failed to set
// md5"), so without this check a hub configured with a password would
// silently run unauthenticated.
func checkTCPMD5(prefix bool) error {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("routing: probing TCP MD5: %w", err)
	}
	defer l.Close()
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return fmt.Errorf("routing: probing TCP MD5: %w", err)
	}
	sig := &unix.TCPMD5Sig{Keylen: 5}
	sig.Addr.Family = unix.AF_INET
	copy(sig.Addr.Data[2:], []byte{127, 0, 0, 2})
	copy(sig.Key[:], "probe")
	var sockErr error
	mptcp := false
	if err := rc.Control(func(fd uintptr) {
		proto, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
		mptcp = err == nil && proto == unix.IPPROTO_MPTCP
		sockErr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, sig)
		if sockErr == nil && prefix {
			sig.Flags, sig.Prefixlen = unix.TCP_MD5SIG_FLAG_PREFIX, 24
			sockErr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG_EXT, sig)
		}
	}); err != nil {
		return fmt.Errorf("routing: probing TCP MD5: %w", err)
	}
	if sockErr != nil && mptcp {
		return fmt.Errorf("%w: %w: setsockopt: %w", ErrTCPMD5Unsupported, ErrMPTCPListener, sockErr)
	}
	if sockErr != nil {
		return fmt.Errorf("%w: setsockopt: %w", ErrTCPMD5Unsupported, sockErr)
	}
	return nil
}
