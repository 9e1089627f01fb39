package routing_test

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dmvpnd/dmvpnd/routing"
)

// tcpMD5Probe sets a TCP MD5 key on a throwaway listener, per address and
// per prefix (TCP_MD5SIG_EXT, as the hub's listener does for its dynamic
// range), and returns the setsockopt error.
func tcpMD5Probe(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	sig := func(prefix bool) *unix.TCPMD5Sig {
		s := &unix.TCPMD5Sig{Keylen: 5}
		s.Addr.Family = unix.AF_INET
		copy(s.Addr.Data[2:], spokeAddrs[0].AsSlice())
		copy(s.Key[:], "probe")
		if prefix {
			s.Flags, s.Prefixlen = unix.TCP_MD5SIG_FLAG_PREFIX, 24
		}
		return s
	}
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, sig(false))
		if sockErr == nil {
			sockErr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG_EXT, sig(true))
		}
	}); err != nil {
		t.Fatal(err)
	}
	return sockErr
}

func unsupported(err error) bool {
	return errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EINVAL)
}

// requireTCPMD5 skips the test when the kernel has no TCP MD5 signatures
// (CONFIG_TCP_MD5SIG): setsockopt fails with ENOPROTOOPT, or EINVAL for the
// prefix form. Any other error fails the test.
func requireTCPMD5(t *testing.T) {
	t.Helper()
	switch err := tcpMD5Probe(t); {
	case unsupported(err):
		t.Skipf("the kernel has no TCP MD5 signatures (TCP_MD5SIG/TCP_MD5SIG_EXT: %v); needs CONFIG_TCP_MD5SIG", err)
	case err != nil:
		t.Fatalf("setsockopt TCP_MD5SIG: %v", err)
	}
}

// TestSpeakerTCPMD5Unsupported: on a kernel without TCP MD5, Start refuses
// a configured password (hub: group password; spoke: per-hub password)
// instead of letting GoBGP run the sessions unsigned.
// startErr returns Start's error for a new Speaker with cfg (stopping it
// again if it started).
func startErr(t *testing.T, cfg routing.Config) error {
	t.Helper()
	sp, err := routing.NewSpeaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = sp.Start(t.Context())
	if err == nil {
		_ = sp.Stop(t.Context())
	}
	return err
}

func TestSpeakerTCPMD5Unsupported(t *testing.T) {
	err := tcpMD5Probe(t)
	if err == nil {
		t.Skip("the kernel supports TCP MD5; TestIntegrationTCPMD5 covers it")
	}
	if !unsupported(err) {
		t.Fatalf("setsockopt TCP_MD5SIG: %v", err)
	}
	hcfg := hubConfig(routing.HubModeReflect, freePort(t, hubAddr), false)
	hcfg.Password = "s3cret"
	scfg := spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, 179)}, hubAS, hubAS)
	scfg.Spoke.Hubs[0].Password = "s3cret"
	for _, cfg := range []routing.Config{hcfg, scfg} {
		err := startErr(t, cfg)
		if !errors.Is(err, routing.ErrTCPMD5Unsupported) || !unsupported(err) {
			t.Errorf("%s: Start = %v, want ErrTCPMD5Unsupported wrapping ENOPROTOOPT or EINVAL", cfg.Role, err)
		}
	}
}

// tcpExt reads one TcpExt counter of /proc/net/netstat (this network
// namespace).
func tcpExt(t *testing.T, name string) uint64 {
	t.Helper()
	f, err := os.Open("/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, h := range header {
			if h == name && i < len(fields) {
				n, err := strconv.ParseUint(fields[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	t.Fatalf("/proc/net/netstat: no TcpExt counter %s", name)
	return 0
}

// TestIntegrationTCPMD5 (RFC 2385): a spoke with the hub's password
// establishes; with another password, or none, or a password the hub does
// not have, the hub's kernel drops the spoke's segments (the TcpExt counter
// of that case grows, twice: the first attempt and a retry) and no session
// comes up, so no route is learned.
func TestIntegrationTCPMD5(t *testing.T) {
	requireTCPMD5(t)
	tests := []struct {
		name                  string
		hub, spoke, neighbour string // neighbour: the spoke's per-hub password
		counter               string // "" when the session must come up
	}{
		{name: "same", hub: "s3cret", spoke: "s3cret"},
		{name: "per-neighbour", hub: "s3cret", spoke: "other", neighbour: "s3cret"},
		{name: "different", hub: "s3cret", spoke: "wrong", counter: "TCPMD5Failure"},
		{name: "spoke-none", hub: "s3cret", counter: "TCPMD5NotFound"},
		{name: "hub-none", spoke: "s3cret", counter: "TCPMD5Unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			port := freePort(t, hubAddr)
			hcfg := hubConfig(routing.HubModeReflect, port, false)
			hcfg.Password = tt.hub
			before := uint64(0)
			if tt.counter != "" {
				before = tcpExt(t, tt.counter)
			}
			hub := startNode(t, "hub", hcfg)
			scfg := spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
			scfg.Password = tt.spoke
			scfg.Spoke.Hubs[0].Password = tt.neighbour
			spoke := startNode(t, "spoke0", scfg)
			if tt.counter == "" {
				hub.waitEstablished(ctx, t, spokeAddrs[0])
				spoke.waitEstablished(ctx, t, hubAddr)
				hub.waitRoutes(ctx, t, expectedHub(1, 2))
				return
			}
			for tcpExt(t, tt.counter) < before+2 {
				select {
				case <-ctx.Done():
					t.Fatalf("the kernel did not count %s (still %d)", tt.counter, tcpExt(t, tt.counter))
				case <-time.After(50 * time.Millisecond):
				}
			}
			// No TCP connection ever came up: the hub never saw the
			// spoke as a (dynamic) neighbor, the spoke never sent an OPEN.
			drain(hub, spoke)
			if s, ok := hub.states[spokeAddrs[0]]; ok {
				t.Errorf("hub: spoke's session %s", s)
			}
			switch s := spoke.states[hubAddr]; s {
			case routing.StateOpenSent, routing.StateOpenConfirm, routing.StateEstablished:
				t.Errorf("spoke: hub's session %s", s)
			}
			if got := hub.sink.String(); got != "" {
				t.Errorf("hub learned routes without authentication:\n%s", got)
			}
			sum, err := hub.sp.Summary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range sum {
				if n.Neighbor == spokeAddrs[0] && n.State == routing.StateEstablished {
					t.Errorf("hub summary: %+v", n)
				}
			}
		})
	}
}

// drain records the events already queued for the nodes.
func drain(nodes ...*node) {
	for _, n := range nodes {
	queued:
		for {
			select {
			case ev := <-n.sp.Events():
				n.states[ev.Neighbor] = ev.State
			default:
				break queued
			}
		}
	}
}

// TestTCPMD5RefusedOnMPTCPListener: Go 1.24+ makes listeners MPTCP where
// the kernel has MPTCP (GODEBUG multipathtcp=2, its default), and an MPTCP
// socket refuses TCP_MD5SIG with ENOPROTOOPT even on a kernel with
// CONFIG_TCP_MD5SIG: GoBGP's listener would then accept unsigned sessions.
// go.mod sets multipathtcp=0; with it back on, Start refuses the password
// and says why.
func TestTCPMD5RefusedOnMPTCPListener(t *testing.T) {
	requireTCPMD5(t) // with go.mod's multipathtcp=0
	t.Setenv("GODEBUG", "multipathtcp=2")
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	proto := 0
	_ = rc.Control(func(fd uintptr) { proto, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) })
	l.Close()
	if proto != unix.IPPROTO_MPTCP {
		t.Skipf("listeners are not MPTCP here (protocol %d): the kernel has no MPTCP", proto)
	}
	hcfg := hubConfig(routing.HubModeReflect, freePort(t, hubAddr), false)
	hcfg.Password = "s3cret"
	if err := startErr(t, hcfg); !errors.Is(err, routing.ErrTCPMD5Unsupported) || !errors.Is(err, routing.ErrMPTCPListener) || !errors.Is(err, unix.ENOPROTOOPT) {
		t.Errorf("Start = %v, want ErrTCPMD5Unsupported and ErrMPTCPListener wrapping ENOPROTOOPT", err)
	}
}
