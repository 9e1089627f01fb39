package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Privileged tests run only with DMVPND_PRIVILEGED=1 (as root, in the lab VM
// or on a host that has the needed kernel features). Each test creates its
// own network namespaces, so it never touches the namespace it runs in.
// Tests that need ip_gre skip when the kernel lacks it, unless
// DMVPND_REQUIRE_GRE=1 turns that into a failure (set it in the lab).
func requirePrivileged(t testing.TB) {
	t.Helper()
	if os.Getenv("DMVPND_PRIVILEGED") != "1" {
		t.Skip("privileged test: set DMVPND_PRIVILEGED=1 (root, throw-away machine)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("DMVPND_PRIVILEGED=1 but not running as root")
	}
}

// newNetNS creates an anonymous network namespace and returns an fd for it,
// closed at the end of the test (the namespace disappears with its last
// reference). The creating thread is discarded, never reused.
func newNetNS(t testing.TB) int {
	t.Helper()
	requirePrivileged(t)
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("create network namespace: %v", r.err)
	}
	t.Cleanup(func() { _ = unix.Close(r.fd) })
	h := nsHandle(t, r.fd)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return r.fd
}

func nsHandle(t testing.TB, fd int) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(fd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func newKernel(t *testing.T, fd int) *Kernel {
	t.Helper()
	k, err := New(Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func sysctlIn(fd int) ProcSysctl { return ProcSysctl{NetNS: fd} }

func mustSysctl(t testing.TB, fd int, key, value string) {
	t.Helper()
	if err := sysctlIn(fd).WriteSysctl(key, value); err != nil {
		t.Fatal(err)
	}
}

// requireGRE skips the test when ip_gre is missing (the development host),
// unless DMVPND_REQUIRE_GRE=1.
func requireGRE(t *testing.T) {
	t.Helper()
	requirePrivileged(t)
	fd := newNetNS(t)
	h := nsHandle(t, fd)
	// A key keeps it distinct from the fallback gre0 (no key, no addresses).
	err := h.LinkAdd(&netlink.Gretun{LinkAttrs: netlink.LinkAttrs{Name: "grecheck"}, Local: net.IPv4zero, IKey: 1, OKey: 1, PMtuDisc: 1})
	if err == nil {
		return
	}
	if os.Getenv("DMVPND_REQUIRE_GRE") == "1" || greModuleInstalled() {
		t.Fatalf("ip_gre is expected here (DMVPND_REQUIRE_GRE=1 or module installed) but: %v", err)
	}
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENODEV) || strings.Contains(err.Error(), "not supported") {
		t.Skipf("kernel has no ip_gre: %v", err)
	}
	t.Fatalf("create test gre tunnel: %v", err)
}

// nsFileFor returns a duplicate of the namespace fd as an *os.File for a
// child process (ExtraFiles): the caller closes it. Wrapping fd itself would
// let the File's finalizer close the test's namespace fd, or a later test's
// that reused the number.
func nsFileFor(t testing.TB, fd int) *os.File {
	t.Helper()
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(dup), "netns")
}

// nsCommand returns the command prog (looked up on PATH) args run through
// nsenter in the namespace fd; the caller runs it once and then calls done.
// It skips the test where prog or nsenter is missing.
func nsCommand(tb testing.TB, fd int, prog string, args ...string) (cmd *exec.Cmd, done func()) {
	tb.Helper()
	path, err1 := exec.LookPath(prog)
	nsenter, err2 := exec.LookPath("nsenter")
	if err1 != nil || err2 != nil {
		tb.Skipf("needs %s and nsenter", prog)
	}
	cmd = exec.Command(nsenter, append([]string{"--net=/proc/self/fd/3", path}, args...)...)
	nsFile := nsFileFor(tb, fd)
	cmd.ExtraFiles = []*os.File{nsFile}
	return cmd, func() { _ = nsFile.Close() }
}

// runIn runs prog args in the namespace fd and returns its output; a
// failure fails the test.
func runIn(tb testing.TB, fd int, prog string, args ...string) string {
	tb.Helper()
	cmd, done := nsCommand(tb, fd, prog, args...)
	defer done()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipIn runs ip(8) in the namespace fd.
func ipIn(t *testing.T, fd int, args ...string) {
	t.Helper()
	runIn(t, fd, "ip", args...)
}

// tcIn runs tc(8) in the namespace fd and returns its output.
func tcIn(t *testing.T, fd int, args ...string) string {
	t.Helper()
	return runIn(t, fd, "tc", args...)
}

// vethPair creates a veth pair between two namespaces and gives each end an
// address (prefixes like "172.16.0.1/24").
func vethPair(t testing.TB, fdA int, nameA, addrA string, fdB int, nameB, addrB string) {
	t.Helper()
	hA, hB := nsHandle(t, fdA), nsHandle(t, fdB)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(fdB)}
	if err := hA.LinkAdd(v); err != nil {
		t.Fatalf("create veth %s/%s: %v", nameA, nameB, err)
	}
	for _, e := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{hA, nameA, addrA}, {hB, nameB, addrB}} {
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if e.addr != "" {
			addLinkAddr(t, e.h, l, e.addr)
		}
		if err := e.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func addLinkAddr(t testing.TB, h *netlink.Handle, l netlink.Link, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s to %s: %v", prefix, l.Attrs().Name, err)
	}
}

func addRoute(t testing.TB, h *netlink.Handle, dst, via string, proto int) {
	t.Helper()
	p := netip.MustParsePrefix(dst)
	r := &netlink.Route{
		Dst:      &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)},
		Gw:       net.ParseIP(via),
		Protocol: netlink.RouteProtocol(proto),
	}
	if err := h.RouteAdd(r); err != nil {
		t.Fatalf("add route %s via %s: %v", dst, via, err)
	}
}

// listenIn opens a packet socket (net.ListenPacket) inside the namespace,
// closed at the end of the test.
func listenIn(t testing.TB, fd int, network, laddr string) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	err := inNetNS(fd, func() error {
		var err error
		c, err = net.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		t.Fatalf("%s socket %s: %v", network, laddr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// udpIn opens a UDP socket bound to laddr inside the namespace.
func udpIn(t testing.TB, fd int, laddr string) *net.UDPConn {
	t.Helper()
	return listenIn(t, fd, "udp4", laddr).(*net.UDPConn)
}

func sendUDP(t testing.TB, c *net.UDPConn, to string, payload string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(payload), netip.MustParseAddrPort(to)); err != nil {
		t.Fatalf("send to %s: %v", to, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fmtNeighbors(ns []Neighbor) string {
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "%s lladdr %s %s\n", n.Addr, n.NBMA, n.State)
	}
	return b.String()
}

// greModuleInstalled reports whether the running kernel ships ip_gre as a
// module (the lab VM): then a failure to create a tunnel is a real failure.
func greModuleInstalled() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	release := unix.ByteSliceToString(u.Release[:])
	for _, ext := range []string{"", ".xz", ".zst", ".gz"} {
		if _, err := os.Stat("/lib/modules/" + release + "/kernel/net/ipv4/ip_gre.ko" + ext); err == nil {
			return true
		}
	}
	return false
}

// tunnelInfo describes the tunnel as the kernel reports it, for the
// privileged tests' checks of EnsureTunnel.
type tunnelInfo struct {
	Name      string
	Ifindex   int
	Up        bool
	NoARP     bool
	Owned     bool // created by dmvpnd (alias marker)
	Local     netip.Addr
	Underlay  int // ifindex, 0 none
	Key       uint32
	TTL       uint8
	TOS       uint8 // 1: inherit
	PMTUDisc  bool
	MTU       int
	Addresses []netip.Prefix
}

// inspectTunnel reads the named tunnel.
func (k *Kernel) inspectTunnel(name string) (tunnelInfo, error) {
	link, err := k.nl.LinkByName(name)
	if err != nil {
		return tunnelInfo{}, opErr("read tunnel", "dev "+name, err)
	}
	g := readGretun(link)
	if g == nil {
		return tunnelInfo{}, opErr("read tunnel", "dev "+name, errors.New("not a gre tunnel: "+link.Type()))
	}
	a := link.Attrs()
	ti := tunnelInfo{
		Name:     a.Name,
		Ifindex:  a.Index,
		Up:       a.RawFlags&unix.IFF_UP != 0,
		NoARP:    a.RawFlags&unix.IFF_NOARP != 0,
		Owned:    a.Alias == ownerAlias,
		Local:    addrFromIP(g.Local),
		Underlay: int(g.Link),
		Key:      g.IKey,
		TTL:      g.Ttl,
		TOS:      g.Tos,
		PMTUDisc: g.PMtuDisc != 0,
		MTU:      a.MTU,
	}
	addrs, err := k.nl.AddrList(link, unix.AF_INET)
	if err != nil {
		return tunnelInfo{}, opErr("list addresses on", "dev "+name, err)
	}
	for _, ad := range addrs {
		if p, ok := prefixFromIPNet(ad.IPNet); ok {
			ti.Addresses = append(ti.Addresses, p)
		}
	}
	return ti, nil
}
