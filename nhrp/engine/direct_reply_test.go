package engine_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

// frrResponder makes responder answer resolution requests forwarded to it
// the way FRR's nhrpd does when it already holds the requester
// (nhrp/interop.md): the reply it would send back through the hub goes
// straight to the requester's NBMA address (the request's source NBMA),
// after edit when edit is set. It returns the count of replies sent so.
func frrResponder(t *testing.T, net *nhrpsim.Network, responder, hub *nhrpsim.Node, edit func(*nhrp.Packet)) *int {
	t.Helper()
	n := new(int)
	net.Drop = func(src, dst netip.Addr, b []byte) bool {
		if src != responder.Addr || dst != hub.Addr {
			return false
		}
		p, err := nhrp.Parse(b)
		if err != nil {
			t.Errorf("%s sent an undecodable packet: %v", responder.Name, err)
			return false
		}
		if p.Type != nhrp.TypeResolutionReply {
			return false
		}
		if edit != nil {
			edit(p)
			b = marshal(t, p)
		}
		*n++
		net.Inject(responder, p.SrcNBMA, b)
		return true
	}
	return n
}

// shortcuts renders a node's shortcuts as sorted text.
func shortcuts(nd *nhrpsim.Node) string {
	var out []string
	for _, sc := range nd.Engine.Shortcuts() {
		out = append(out, fmt.Sprintf("%s via %s at %s %s", sc.Prefix, sc.Via, sc.NBMA, sc.State))
	}
	return strings.Join(out, "\n")
}

// A Phase 3 resolution through the hub answered by an FRR spoke straight
// to the requester (issue 10's interop lab: FRR does so when it holds
// the requester): the requester takes the reply because it already holds
// the responder at the NBMA the reply came from, and binds the target
// host alone, since no NHS vouched for the responder's prefix. Replies
// from a responder the requester does not hold, or naming another node,
// are refused and counted, and bind nothing.
func TestDirectReplyFromHeldResponder(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held: spoke 2 resolved these tunnel addresses (through the
		// hub) before the flow; edit changes the responder's reply.
		held    []string
		edit    func(*nhrp.Packet)
		want    string // spoke 2's shortcuts afterwards
		refused uint64 // drop_wrong_responder on spoke 2
	}{
		{
			name: "held responder", held: []string{"10.255.0.3"},
			want: "10.0.3.7/32 via 10.255.0.3 at 198.51.100.3 up\n10.255.0.3/32 via 10.255.0.3 at 198.51.100.3 up",
		},
		{
			name: "responder not held",
			want: "", refused: 1,
		},
		{
			name: "names another node", held: []string{"10.255.0.3", "10.255.0.4"},
			edit: func(p *nhrp.Packet) {
				p.CIEs[0].ClientProto, p.CIEs[0].ClientNBMA = addr("10.255.0.4"), addr("198.51.100.4")
			},
			want: "10.255.0.3/32 via 10.255.0.3 at 198.51.100.3 up\n10.255.0.4/32 via 10.255.0.4 at 198.51.100.4 up", refused: 1,
		},
		{
			name: "own address, another node's NBMA", held: []string{"10.255.0.3", "10.255.0.4"},
			edit: func(p *nhrp.Packet) { p.CIEs[0].ClientNBMA = addr("198.51.100.4") },
			want: "10.255.0.3/32 via 10.255.0.3 at 198.51.100.3 up\n10.255.0.4/32 via 10.255.0.4 at 198.51.100.4 up", refused: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			s2 := tp.spoke(2, "198.51.100.2", nil)
			s3 := tp.spoke(3, "198.51.100.3", nil)
			tp.spoke(4, "198.51.100.4", nil)
			tp.start()
			for _, a := range tc.held {
				s2.Engine.Resolve(addr(a))
				tp.run()
				if _, ok := cacheEntry(s2, a, engine.KindResolved); !ok {
					t.Fatalf("spoke2 did not resolve %s: %+v", a, s2.Engine.Cache())
				}
			}
			direct := frrResponder(t, tp.net, s3, tp.hub, tc.edit)
			c0 := s2.Engine.Counters()

			// A flow from spoke 2's LAN to spoke 3's hairpins at the hub:
			// traffic indication, resolution through the hub, which
			// forwards it to spoke 3, the egress.
			tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
			tp.run()

			wantCounter(t, tp.hub, "resolutions_forwarded", 1)
			if *direct != 1 {
				t.Fatalf("spoke3 answered %d times straight to spoke2, want 1", *direct)
			}
			wantCounter(t, tp.hub, "resolutions_relayed", 0)
			c1 := s2.Engine.Counters()
			if got := c1["drop_wrong_responder"] - c0["drop_wrong_responder"]; got != tc.refused {
				t.Errorf("spoke2 drop_wrong_responder +%d, want +%d (counters %v)", got, tc.refused, c1)
			}
			if diff := cmp.Diff(tc.want, shortcuts(s2)); diff != "" {
				t.Errorf("spoke2 shortcuts (-want +got):\n%s", diff)
			}
			// Never the responder's /24: nothing vouched for it.
			if h := shortcutHistory(s2, "10.0.3.0/24"); len(h) != 0 {
				t.Errorf("spoke2 shortcut 10.0.3.0/24 went through %v, want never", h)
			}
			if tc.refused == 0 {
				return
			}
			// A refused reply leaves the request outstanding (a forged
			// one must not make spoke 2 give up on the target): once
			// spoke 3 answers through the hub, the retransmission
			// completes, the hub vouching for the /24.
			if _, neg := cacheEntry(s2, "10.0.3.7", engine.KindNegative); neg {
				t.Errorf("spoke2 cached 10.0.3.7 as negative after the refused reply")
			}
			tp.net.Drop = nil
			tp.advance(2 * time.Second) // past the first retry (RetryMin, default 1 s)
			if got := shortcutHistory(s2, "10.0.3.0/24"); !slices.Contains(got, "up") {
				t.Errorf("spoke2 shortcut 10.0.3.0/24 after the retransmission through the hub: %v, want up; shortcuts:\n%s", got, shortcuts(s2))
			}
		})
	}
}
