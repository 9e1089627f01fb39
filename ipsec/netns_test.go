package ipsec_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"golang.org/x/sys/unix"
)

// requirePrivileged skips unless the lab asked for privileged tests.
func requirePrivileged(t *testing.T) {
	t.Helper()
	if os.Getenv("DMVPND_PRIVILEGED") != "1" {
		t.Skip("privileged test: set DMVPND_PRIVILEGED=1 (run inside the lab)")
	}
	if _, err := os.Stat(ipsec.CharonBinary); err != nil {
		t.Skipf("no charon: %v", err)
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// node is one network namespace with a charon.
type node struct {
	t    *testing.T
	ns   string
	addr netip.Addr
	dir  string
	sock string
	dev  string // underlay device
	wire bool   // egress counters installed
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// newPair creates two namespaces joined by a veth pair, addresses
// 10.77.0.1 and 10.77.0.2.
func newPair(t *testing.T) (a, b *node) {
	t.Helper()
	base := fmt.Sprintf("ipst%d", os.Getpid()%100000)
	mk := func(suffix string, addr string) *node {
		dir, err := os.MkdirTemp("", "ipsec-lab")
		if err != nil {
			t.Fatal(err)
		}
		n := &node{t: t, ns: base + suffix, addr: netip.MustParseAddr(addr), dir: dir,
			sock: filepath.Join(dir, "charon.vici")}
		run(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() {
			n.stopCharon()
			_ = exec.Command("ip", "netns", "del", n.ns).Run()
			if t.Failed() {
				t.Logf("charon log of %s:\n%s", n.ns, n.charonLog())
			}
			os.RemoveAll(dir)
		})
		run(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
		return n
	}
	a, b = mk("a", "10.77.0.1"), mk("b", "10.77.0.2")
	run(t, "ip", "link", "add", base+"va", "netns", a.ns, "type", "veth", "peer", "name", base+"vb", "netns", b.ns)
	for _, x := range []struct {
		n   *node
		dev string
	}{{a, base + "va"}, {b, base + "vb"}} {
		run(t, "ip", "-n", x.n.ns, "addr", "add", x.n.addr.String()+"/24", "dev", x.dev)
		run(t, "ip", "-n", x.n.ns, "link", "set", x.dev, "up")
		x.n.dev = x.dev
		x.n.wire = x.n.watchEgress(x.dev)
	}
	return a, b
}

// startCharon starts charon in the namespace with a private /run (charon
// writes its pid file there) and waits for the VICI socket.
func (n *node) startCharon() {
	t := n.t
	t.Helper()
	runDir := filepath.Join(n.dir, "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(n.dir, "strongswan.conf")
	if err := os.WriteFile(conf, []byte(ipsec.StrongswanConf(ipsec.CharonConf{Socket: n.sock, LogLevel: 1})), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(n.sock)
	if n.log == nil {
		n.log = &bytes.Buffer{}
	}
	n.cmd = exec.Command("ip", "netns", "exec", n.ns, "sh", "-c",
		fmt.Sprintf("mount --rbind %s /run && STRONGSWAN_CONF=%s exec %s", runDir, conf, ipsec.CharonBinary))
	n.cmd.Stdout, n.cmd.Stderr = &lockedWriter{b: n.log}, &lockedWriter{b: n.log}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(n.cmd, n.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(n.sock); err == nil {
			return
		}
		select {
		case <-n.done:
			t.Fatalf("charon in %s exited:\n%s", n.ns, n.charonLog())
		case <-time.After(50 * time.Millisecond): // polling for the socket with a deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon in %s: no socket after 30s:\n%s", n.ns, n.charonLog())
		}
	}
}

// stopCharon kills charon hard (SIGKILL), as a crash would.
func (n *node) stopCharon() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

func (n *node) charonLog() string {
	if n.log == nil {
		return ""
	}
	lw := &lockedWriter{b: n.log}
	return lw.String()
}

// inNS runs f on a thread switched into the namespace.
func (n *node) inNS(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must die.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + n.ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("switching back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sendGRE sends count raw GRE packets (protocol 47) from n to dst.
func (n *node) sendGRE(dst netip.Addr, count int) error {
	var fd int
	err := n.inNS(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_GRE)
		return err
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// GRE header: no flags, protocol 0x0800, then a small payload.
	pkt := []byte{0, 0, 0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	sa := &unix.SockaddrInet4{Addr: dst.As4()}
	for range count {
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			return err
		}
	}
	return nil
}

var xfrmCounters = regexp.MustCompile(`(\d+)\(bytes\), (\d+)\(packets\)`)

// espPackets returns the packet counter of the ESP state from src to dst
// (summed over states, e.g. during a rekey).
func (n *node) espPackets(src, dst netip.Addr) (int, bool) {
	out, err := exec.Command("ip", "-n", n.ns, "-s", "xfrm", "state", "list", "src", src.String(), "dst", dst.String(), "proto", "esp").CombinedOutput()
	if err != nil {
		n.t.Logf("ip xfrm state: %v %s", err, out)
		return 0, false
	}
	found := false
	total := 0
	for _, block := range strings.Split(string(out), "src ")[1:] {
		i := strings.Index(block, "lifetime current:")
		if i < 0 {
			continue
		}
		m := xfrmCounters.FindStringSubmatch(block[i:])
		if m == nil {
			continue
		}
		p, _ := strconv.Atoi(m[2])
		total += p
		found = true
	}
	return total, found
}

// manager runs an ipsec.Manager against the node's charon.
func (n *node) manager(cfg ipsec.Config) *ipsec.Manager {
	t := n.t
	t.Helper()
	cfg.SocketPath = n.sock
	cfg.LocalNBMA = n.addr
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	cfg.ReconnectMin = 100 * time.Millisecond
	cfg.ReconnectMax = time.Second
	cfg.Logger = testLogger(t, n.ns)
	m, err := ipsec.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// waitUp waits until m reports peer up and returns the event.
func waitUp(t *testing.T, m *ipsec.Manager, peer string, timeout time.Duration) ipsec.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-m.Events():
			if ev.Peer == peer && ev.Status == ipsec.StatusUp {
				return ev
			}
		case <-deadline:
			t.Fatalf("peer %s not up after %v; state %+v", peer, timeout, m.State())
		}
	}
}
