package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// rig is one engine under attack: the test hands it crafted packets and
// reads back what it answered, its state and its counters.
type rig struct {
	t    *testing.T
	net  *nhrpsim.Network
	node *nhrpsim.Node
	sent []sentPacket
}

type sentPacket struct {
	to netip.Addr
	p  *nhrp.Packet
}

// newRig returns a hub (tunnel 10.255.0.1/24 at 192.0.2.1) whose every
// sent packet is recorded and dropped.
func newRig(t *testing.T, mod ...func(*engine.Config)) *rig {
	t.Helper()
	cfg := hubConfig()
	cfg.TunnelPrefix = pfx("10.255.0.0/24")
	for _, m := range mod {
		m(&cfg)
	}
	return newRigNode(t, hubNBMA, cfg)
}

func newRigNode(t *testing.T, nbma string, cfg engine.Config) *rig {
	t.Helper()
	r := &rig{t: t, net: nhrpsim.New()}
	nd, err := r.net.AddNode("dut", nbma, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.node = nd
	nd.Routes.Add("10.255.0.0/24", true, "")
	r.net.Drop = func(src, dst netip.Addr, b []byte) bool {
		if src == nd.Addr {
			p, err := nhrp.Parse(b)
			if err != nil {
				t.Errorf("engine sent an undecodable packet: %v", err)
				return true
			}
			r.sent = append(r.sent, sentPacket{dst, p})
		}
		return true
	}
	return r
}

func ipsecOn(c *engine.Config) { c.IPsec = true }

// recv hands b from the NBMA address from to the engine and returns what
// the engine sent in answer.
func (r *rig) recv(from string, b []byte) []sentPacket {
	r.t.Helper()
	n := len(r.sent)
	r.node.Engine.HandlePacket(addr(from), b)
	if err := r.net.Run(); err != nil {
		r.t.Fatal(err)
	}
	return r.sent[n:]
}

// advance moves the clock forward by d, running the engine's timers and
// recording what they send.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	if err := r.net.Advance(d); err != nil {
		r.t.Fatal(err)
	}
}

// state renders the engine's cache, neighbor table and shortcuts as text.
func (r *rig) state() string {
	var b strings.Builder
	t0 := r.net.Clock.Now()
	for _, ce := range r.node.Engine.Cache() {
		fmt.Fprintf(&b, "cache %s %s nbma=%s claimed=%s observed=%s unique=%v expires=%s\n", ce.Proto, ce.Kind,
			ce.NBMA, ce.Claimed, ce.Observed, ce.Unique, ce.Expires.Sub(t0))
	}
	b.WriteString(r.node.Neigh.String())
	for _, sc := range r.node.Engine.Shortcuts() {
		fmt.Fprintf(&b, "shortcut %s via %s %s\n", sc.Prefix, sc.Via, sc.State)
	}
	return b.String()
}

// counter reads one counter.
func (r *rig) counter(name string) uint64 { return r.node.Engine.Counters()[name] }

// cie is a client entry of a crafted packet.
type cie struct {
	proto, nbma string
	holding     uint16
}

// registration crafts a Registration Request from srcNBMA/srcProto with
// the given CIEs (an empty nbma leaves the client NBMA out).
func registration(t *testing.T, srcNBMA, srcProto string, id uint32, unique bool, cies ...cie) []byte {
	t.Helper()
	p := nhrp.NewRegistrationRequest(addr(srcNBMA), addr(srcProto), addr(hubProto), id, 600, 0, unique)
	p.CIEs = p.CIEs[:0]
	for _, c := range cies {
		e := nhrp.CIE{PrefixLength: nhrp.HostPrefixLength, HoldingTime: c.holding, ClientProto: addr(c.proto)}
		if c.nbma != "" {
			e.ClientNBMA = addr(c.nbma)
		}
		p.CIEs = append(p.CIEs, e)
	}
	return marshal(t, p)
}

// codes lists the CIE codes of a reply.
func codes(sp []sentPacket) []string {
	var out []string
	for _, s := range sp {
		for _, c := range s.p.CIEs {
			out = append(out, c.Code.String())
		}
	}
	return out
}
