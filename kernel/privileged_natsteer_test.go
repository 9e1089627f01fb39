package kernel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestPrivNATSteering: two spokes behind different NATs with the same
// private NBMA (172.16.0.5; their outer addresses .101 and .102 stand for
// the NATs' public addresses), each with a tunnel-mode SA whose hub side
// carries marks of its own as charon installs them with mark_in/mark_out
// %unique and set_mark_in %same. With NATSteering, the hub's GRE to A's
// inner address and to B's alias each take their own SA and both spokes'
// answers come back (B's through its alias policy); without B's entry B
// is cut off and A is not; Remove leaves nothing.
func TestPrivNATSteering(t *testing.T) {
	requireGRE(t)
	hub, a, b := newNetNS(t), newNetNS(t), newNetNS(t)
	const local, inner, alias = "192.0.2.1", "172.16.0.5", "198.18.0.1"
	ipIn(t, hub, "link", "add", "br0", "type", "bridge")
	ipIn(t, hub, "link", "set", "br0", "up")
	for i, s := range []struct {
		fd     int
		outer  string
		tunnel string
	}{{a, "192.0.2.101", "10.0.0.2/24"}, {b, "192.0.2.102", "10.0.0.3/24"}} {
		port := []string{"pa", "pb"}[i]
		vethPair(t, hub, port, "", s.fd, "e0", s.outer+"/24")
		ipIn(t, hub, "link", "set", port, "master", "br0")
		ipIn(t, s.fd, "link", "set", "lo", "up")
		ipIn(t, s.fd, "addr", "add", inner+"/32", "dev", "lo")
		ipIn(t, s.fd, "link", "add", "gre1", "type", "gre", "local", inner, "remote", local, "key", "42")
		ipIn(t, s.fd, "link", "set", "gre1", "up")
		ipIn(t, s.fd, "addr", "add", s.tunnel, "dev", "gre1")
	}
	ipIn(t, hub, "addr", "add", local+"/24", "dev", "br0")
	ipIn(t, hub, "route", "add", "default", "dev", "br0") // covers the inner address and the alias before steering
	ipIn(t, hub, "link", "add", "gre1", "type", "gre", "local", local, "key", "42")
	ipIn(t, hub, "link", "set", "gre1", "up")
	ipIn(t, hub, "addr", "add", "10.0.0.1/24", "dev", "gre1")
	ipIn(t, hub, "neigh", "add", "10.0.0.2", "lladdr", inner, "dev", "gre1", "nud", "permanent")
	ipIn(t, hub, "neigh", "add", "10.0.0.3", "lladdr", alias, "dev", "gre1", "nud", "permanent")

	alg := []string{"aead", "rfc4106(gcm(aes))", "0x0123456789abcdef0123456789abcdef01234567", "128"}
	for _, s := range []struct {
		fd                   int
		outer, spiIn, spiOut string
		reqid, mark          string
	}{{a, "192.0.2.101", "0xa1", "0xa2", "1", "0x101"}, {b, "192.0.2.102", "0xb1", "0xb2", "2", "0x102"}} {
		// The spoke: plain tunnel mode, inner address to the hub.
		ipIn(t, s.fd, append([]string{"xfrm", "state", "add", "src", s.outer, "dst", local, "proto", "esp", "spi", s.spiIn, "reqid", s.reqid, "mode", "tunnel"}, alg...)...)
		ipIn(t, s.fd, append([]string{"xfrm", "state", "add", "src", local, "dst", s.outer, "proto", "esp", "spi", s.spiOut, "reqid", s.reqid, "mode", "tunnel"}, alg...)...)
		ipIn(t, s.fd, "xfrm", "policy", "add", "src", inner+"/32", "dst", local+"/32", "proto", "gre", "dir", "out",
			"tmpl", "src", s.outer, "dst", local, "proto", "esp", "reqid", s.reqid, "mode", "tunnel")
		ipIn(t, s.fd, "xfrm", "policy", "add", "src", local+"/32", "dst", inner+"/32", "proto", "gre", "dir", "in",
			"tmpl", "src", local, "dst", s.outer, "proto", "esp", "reqid", s.reqid, "mode", "tunnel")
		// The hub, as charon installs a marked NAT child: the inbound SA
		// sets the mark (set_mark_in), both policies and the outbound SA
		// carry it.
		ipIn(t, hub, append(append([]string{"xfrm", "state", "add", "src", s.outer, "dst", local, "proto", "esp", "spi", s.spiIn, "reqid", s.reqid, "mode", "tunnel"}, alg...), "output-mark", s.mark)...)
		ipIn(t, hub, append(append([]string{"xfrm", "state", "add", "src", local, "dst", s.outer, "proto", "esp", "spi", s.spiOut, "reqid", s.reqid, "mode", "tunnel"}, alg...), "mark", s.mark)...)
		ipIn(t, hub, "xfrm", "policy", "add", "src", local+"/32", "dst", inner+"/32", "proto", "gre", "dir", "out", "mark", s.mark,
			"tmpl", "src", local, "dst", s.outer, "proto", "esp", "reqid", s.reqid, "mode", "tunnel")
		ipIn(t, hub, "xfrm", "policy", "add", "src", inner+"/32", "dst", local+"/32", "proto", "gre", "dir", "in", "mark", s.mark,
			"tmpl", "src", s.outer, "dst", local, "proto", "esp", "reqid", s.reqid, "mode", "tunnel")
	}
	// The GRE guard beside it: nothing leaves or enters in clear.
	guard := NewGREGuard(GuardConfig{NetNS: hub})
	if err := guard.Install(netip.MustParseAddr(local), SourceBinding{}); err != nil {
		t.Fatal(err)
	}

	ip := netip.MustParseAddr
	steerA := NATSteer{GRE: ip(inner), Inner: ip(inner), Outer: ip("192.0.2.101"), MarkIn: 0x101, MarkOut: 0x101, ReqID: 1}
	steerB := NATSteer{GRE: ip(alias), Inner: ip(inner), Outer: ip("192.0.2.102"), MarkIn: 0x102, MarkOut: 0x102, ReqID: 2}
	st := NewNATSteering(NATSteerConfig{NetNS: hub, AliasPrefix: netip.MustParsePrefix("198.18.0.0/15")})
	t.Cleanup(func() { _ = st.Remove() })

	pinger := icmpIn(t, hub, 0x7a7a)
	seq := uint16(0)
	ping := func(dst string) error { seq++; return pinger.ping(ip(dst), seq, 2*time.Second) }
	reach := func(when string, wantA, wantB bool) {
		t.Helper()
		for _, c := range []struct {
			dst  string
			want bool
		}{{"10.0.0.2", wantA}, {"10.0.0.3", wantB}} {
			err := ping(c.dst)
			if (err == nil) != c.want {
				t.Errorf("%s: ping %s: %v, want reachable %v", when, c.dst, err, c.want)
			}
		}
	}
	reach("no steering (unmarked GRE matches no policy)", false, false)
	if c := guardCounters(t, guard); c.OutPackets == 0 {
		t.Errorf("guard counters %+v: unmarked GRE was not dropped at the output", c)
	}

	if err := st.Set(ip(local), []NATSteer{steerA, steerB}); err != nil {
		t.Fatal(err)
	}
	before := guardCounters(t, guard)
	reach("both steered", true, true)
	if err := st.Set(ip(local), []NATSteer{steerA, steerB}); err != nil { // idempotent
		t.Fatal(err)
	}
	reach("both steered, set again", true, true)
	if c := guardCounters(t, guard); c != before {
		t.Errorf("guard dropped steered GRE: %+v, before %+v", c, before)
	}
	if n := aliasPolicies(t, hub); n != 1 {
		t.Errorf("%d alias policies, want 1", n)
	}
	// B's CHILD_SA beside the one it replaces (other marks, listed after
	// it): the first entry's outbound mark, an alias policy for each.
	old := steerB
	old.MarkIn, old.MarkOut, old.ReqID = 0x1f2, 0x1f2, 9
	if err := st.Set(ip(local), []NATSteer{steerA, steerB, old}); err != nil {
		t.Fatal(err)
	}
	reach("B with its replaced CHILD_SA's entry", true, true)
	if n := aliasPolicies(t, hub); n != 2 {
		t.Errorf("%d alias policies with B's old CHILD_SA, want 2", n)
	}

	if err := st.Set(ip(local), []NATSteer{steerA}); err != nil {
		t.Fatal(err)
	}
	reach("B's entries removed", true, false)
	if n := aliasPolicies(t, hub); n != 0 {
		t.Errorf("%d alias policies after B's removal, want 0", n)
	}
	if err := st.Set(ip(local), []NATSteer{steerA, steerB}); err != nil {
		t.Fatal(err)
	}
	reach("B back", true, true)

	if err := st.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if n := aliasPolicies(t, hub); n != 0 {
		t.Errorf("%d alias policies after Remove, want 0", n)
	}
	reach("after Remove", false, false)
}

// aliasPolicies counts inbound GRE policies from 198.18.0.0/15 in fd.
func aliasPolicies(t *testing.T, fd int) int {
	t.Helper()
	ps, err := nsHandle(t, fd).XfrmPolicyList(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range ps {
		if p.Dir == netlink.XFRM_DIR_IN && p.Src != nil && p.Src.IP.To4() != nil && p.Src.IP.To4()[0] == 198 && p.Src.IP.To4()[1]&0xfe == 18 {
			n++
		}
	}
	return n
}
