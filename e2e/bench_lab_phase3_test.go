package e2e

// The Phase 3 part of TestBenchLab (make bench-lab): on the same boot as
// the bursts, a cloud of one hub and two spokes (the hub namespace of the
// bursts, s1 and s2), all dmvpnd or all FRR, with and without IPsec, and
// the latencies of the first traffic from s1's LAN to s2's.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/internal/benchreport"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap"
)

// blP3Topology is the Phase 3 cloud's topology (frrLab's: hub
// 198.51.100.1 with LAN 10.1.0.1/24, s1 .2 and s2 .3 with LANs
// 10.1.1.1/24 and 10.1.2.1/24), built once with the bursts' namespaces.
func blP3Topology(t *testing.T, l *lab.Lab, bin string) lab.Topology {
	_, topo := frrLabSites(t, l, bin, frrKindDMVPND, frrKindDMVPND, frrKindDMVPND)
	return topo
}

// blP3CleanScript removes what a cloud left in a node's namespace: the
// tunnel (with its routes and neighbours), the FRR hub's NFLOG rule,
// dmvpnd's nftables tables (hairpin trigger, IPsec guard) and the SAs
// and policies.
const blP3CleanScript = "ip link del gre1 2>/dev/null; iptables -F FORWARD 2>/dev/null; nft flush ruleset 2>/dev/null; ip xfrm state flush; ip xfrm policy flush; true"

// phase3 runs one cloud of out.Impl with or without IPsec (out.IPsec)
// and fills in its Phase 3 latencies. A failure fails t (a subtest) and
// is recorded in out.Error, not fatal to the bench.
func (b *blBench) phase3(t *testing.T, out *benchreport.Phase3) {
	impl, ipsec, rep := out.Impl, out.IPsec, out.Rep
	b.runs++
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kind := map[string]string{benchreport.DMVPND: frrKindDMVPND, benchreport.FRR: frrKindFRR}[impl]
	il, _ := frrLabSites(t, b.l, b.bin, kind, kind, kind)
	il.ipsec = ipsec
	for _, s := range il.sites {
		if s.d != nil {
			s.d.dir = fmt.Sprintf("%s/p3-%d/%s", b.l.Scratch(), b.runs, s.name)
		}
	}
	il.attach()
	hub, s1, s2 := il.sites[0], il.sites[1], il.sites[2]
	// One guest command cleans the three namespaces at once (each
	// command is a round trip to the guest, and slow under TCG).
	var script strings.Builder
	for _, s := range il.sites {
		fmt.Fprintf(&script, "ip netns exec %s sh -c '%s' &\n", s.node.NS, blP3CleanScript) // the script has no quote
	}
	script.WriteString("wait")
	clean := func() error {
		_, err := b.l.Run(ctx, script.String())
		return err
	}
	if err := clean(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := errors.Join(blP3Stop(ctx, il), clean()); err != nil {
			t.Errorf("stop the cloud: %v", err)
		}
		if t.Failed() && out.Error == "" {
			out.Error = "see the test log"
		}
	}()
	il.start(ctx) // t.Fatal on failure: out.Error is set by the defer

	name := fmt.Sprintf("p3-%s-ipsec%t-%d", impl, ipsec, rep)
	hubCap, err := hub.node.Capture(ctx, "gre1", name+"-hub-gre1")
	if err != nil {
		t.Fatal(err)
	}
	s1Cap, err := s1.node.Capture(ctx, "gre1", name+"-s1-gre1")
	if err != nil {
		t.Fatal(err)
	}
	var ethCap *lab.Capture
	if ipsec {
		if ethCap, err = s1.node.Capture(ctx, "eth0", name+"-s1-eth0"); err != nil {
			t.Fatal(err)
		}
	}
	mon, err := blStartRouteMonitor(ctx, s1.node, name)
	if err != nil {
		t.Fatal(err)
	}
	ping, err := s1.node.Start(ctx, name+"-ping", fmt.Sprintf("ping -n -i 0.1 -W 1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	// Until the shortcut route is in s1's kernel and, with IPsec, the
	// spokes' SA is up; then one more second of pings for the first
	// direct ESP packet to be captured.
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	err = lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		res, err := s1.node.Run(ctx, fmt.Sprintf("ip -4 route show %s; ip xfrm state list src %s dst %s", s2.lan.Masked(), s1.nbma, s2.nbma))
		if err != nil {
			return err
		}
		if !strings.Contains(string(res.Stdout), "via "+s2.tunnel.String()+" ") {
			return fmt.Errorf("no shortcut route to %s on s1: %s", s2.lan.Masked(), res.Stdout)
		}
		if ipsec && !strings.Contains(string(res.Stdout), "proto esp") {
			return errors.New("no SA from s1 to s2 yet")
		}
		return nil
	})
	wcancel()
	if err == nil {
		time.Sleep(time.Second)
	}
	stopErr := errors.Join(ping.Stop(ctx), mon.Stop(ctx))
	_, e1 := hubCap.Stop(ctx)
	_, e2 := s1Cap.Stop(ctx)
	stopErr = errors.Join(stopErr, e1, e2)
	if ethCap != nil {
		_, e3 := ethCap.Stop(ctx)
		stopErr = errors.Join(stopErr, e3)
	}
	if err != nil {
		t.Errorf("%s: %v", name, err)
		out.Error = err.Error()
	}
	if stopErr != nil {
		t.Fatal(stopErr)
	}

	var missing []string
	first, ok, err := blP3FirstPacket(s1Cap.Path, s1.lan.Addr(), s2.lan.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		missing = append(missing, "no packet of the flow on s1's gre1")
	}
	hairpin, indication, err := blP3Hairpin(hubCap.Path, s1.lan.Addr(), s2.lan.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !hairpin.IsZero() && !indication.IsZero() {
		out.HairpinToIndication = blMS(indication.Sub(hairpin))
	} else {
		missing = append(missing, "no hairpinned packet and traffic indication on the hub's gre1")
	}
	log, err := os.ReadFile(mon.Log)
	if err != nil {
		t.Fatal(err)
	}
	route, rok := blRouteAdded(strings.Split(string(log), "\n"), s2.lan.Masked(), s2.tunnel)
	if ok && rok {
		out.FirstToRoute = blMS(route.Sub(first))
	} else {
		missing = append(missing, "no shortcut route in s1's ip monitor")
	}
	if ipsec {
		esp, eok, err := blP3FirstESP(ethCap.Path, s1.nbma, s2.nbma)
		if err != nil {
			t.Fatal(err)
		}
		if ok && eok {
			out.FirstToESP = blMS(esp.Sub(first))
		} else {
			missing = append(missing, "no ESP from s1 to s2 on s1's eth0")
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %s", name, strings.Join(missing, "; "))
		out.Error = strings.Join(append([]string{out.Error}, missing...), "; ")
	}
	t.Logf("%s: hairpin -> indication %s, first packet -> route %s, -> ESP %s", name,
		blFmtMS(out.HairpinToIndication), blFmtMS(out.FirstToRoute), blFmtMS(out.FirstToESP))
}

// blP3Stop stops a cloud's daemons and charons.
func blP3Stop(ctx context.Context, il *frrLab) error {
	var errs []error
	for _, s := range il.sites {
		if s.d != nil && s.d.proc != nil {
			errs = append(errs, s.d.proc.Stop(ctx))
		}
		if s.f != nil && s.f.frr != nil {
			for _, p := range s.f.frr.Procs {
				errs = append(errs, p.Stop(ctx))
			}
		}
		if s.charon != nil {
			errs = append(errs, s.charon.Proc.Stop(ctx))
			// The next cloud's charon on this node uses the same path:
			// a socket left behind would pass its readiness check early.
			_, err := s.node.Run(ctx, "rm -f "+s.charon.Socket)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// blStartRouteMonitor starts `ip -ts monitor route` on n (UTC, so that
// its timestamps compare with the captures') and returns once it reports
// a marker route.
func blStartRouteMonitor(ctx context.Context, n *lab.Node, name string) (*lab.Proc, error) {
	p, err := n.Start(ctx, name+"-ipmon", "env TZ=UTC ip -ts -4 monitor route")
	if err != nil {
		return nil, err
	}
	marker := "192.0.2.99"
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = lab.WaitFor(wctx, 200*time.Millisecond, func(ctx context.Context) error {
		_, _ = n.Exec(ctx, "ip route add "+marker+"/32 dev lo; ip route del "+marker+"/32 dev lo")
		b, err := os.ReadFile(p.Log)
		if err != nil || !strings.Contains(string(b), marker) {
			return fmt.Errorf("ip monitor not listening yet (%v)", err)
		}
		return nil
	})
	return p, err
}

// blRouteAdded finds the first `ip -ts monitor route` line (guest clock,
// UTC) adding a route to dst via gw and returns its time.
func blRouteAdded(lines []string, dst netip.Prefix, gw netip.Addr) (time.Time, bool) {
	for _, line := range lines {
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "["), "] ")
		if !ok || !strings.HasPrefix(rest, dst.String()+" ") || !strings.Contains(rest, " via "+gw.String()+" ") {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", ts, time.UTC)
		if err != nil {
			continue
		}
		return at, true
	}
	return time.Time{}, false
}

// blP3Frames calls f for every frame of a capture file until it returns
// false.
func blP3Frames(path string, f func(nhrpcap.Frame) bool) error {
	fd, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fd.Close()
	r, err := nhrpcap.NewReader(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for {
		fr, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if !f(fr) {
			return nil
		}
	}
}

// blFrameIPv4 returns the IPv4 header fields of a captured frame: its
// source, destination and protocol (Ethernet, Linux cooked v1/v2 or raw
// IP links).
func blFrameIPv4(fr nhrpcap.Frame) (src, dst netip.Addr, proto uint8, ok bool) {
	b := fr.Data
	var et uint16
	switch fr.LinkType {
	case nhrpcap.LinkTypeEthernet:
		if len(b) < 14 {
			return
		}
		et, b = binary.BigEndian.Uint16(b[12:]), b[14:]
	case nhrpcap.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return
		}
		et, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case nhrpcap.LinkTypeLinuxSLL2:
		if len(b) < 20 {
			return
		}
		et, b = binary.BigEndian.Uint16(b), b[20:]
	case nhrpcap.LinkTypeRaw, nhrpcap.LinkTypeIPv4:
		et = 0x0800
	default:
		return
	}
	if et != 0x0800 || len(b) < 20 || b[0]>>4 != 4 {
		return
	}
	return netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), b[9], true
}

// blP3FirstPacket is the time of the flow's first packet (src -> dst,
// ICMP) in a capture.
func blP3FirstPacket(path string, src, dst netip.Addr) (time.Time, bool, error) {
	var at time.Time
	err := blP3Frames(path, func(fr nhrpcap.Frame) bool {
		if s, d, p, ok := blFrameIPv4(fr); ok && s == src && d == dst && p == 1 {
			at = fr.Timestamp
			return false
		}
		return true
	})
	return at, !at.IsZero(), err
}

// blP3Hairpin reads the hub's gre1 capture: the time of the flow's first
// packet (in from s1; the same packet leaves again to s2 just after) and
// of the first traffic indication sent after it.
func blP3Hairpin(path string, src, dst netip.Addr) (hairpin, indication time.Time, err error) {
	err = blP3Frames(path, func(fr nhrpcap.Frame) bool {
		if hairpin.IsZero() {
			if s, d, p, ok := blFrameIPv4(fr); ok && s == src && d == dst && p == 1 {
				hairpin = fr.Timestamp
			}
			return true
		}
		if pk, ok := nhrpcap.Extract(fr); ok {
			if m, err := nhrp.Parse(pk.NHRP); err == nil && m.Type == nhrp.TypeTrafficIndication {
				indication = fr.Timestamp
				return false
			}
		}
		return true
	})
	return hairpin, indication, err
}

// blP3FirstESP is the time of the first ESP packet from src to dst in an
// underlay capture.
func blP3FirstESP(path string, src, dst netip.Addr) (time.Time, bool, error) {
	var at time.Time
	err := blP3Frames(path, func(fr nhrpcap.Frame) bool {
		if s, d, p, ok := blFrameIPv4(fr); ok && s == src && d == dst && p == 50 {
			at = fr.Timestamp
			return false
		}
		return true
	})
	return at, !at.IsZero(), err
}

// blMS is d in milliseconds.
func blMS(d time.Duration) *float64 {
	v := float64(d) / float64(time.Millisecond)
	return &v
}

func blFmtMS(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", *v)
}
