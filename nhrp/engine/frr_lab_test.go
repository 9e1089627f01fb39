package engine_test

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// Packets FRR nhrpd 8.4.4 sent to a dmvpnd hub in the e2e lab
// (TestFRRSpokesDMVPNDHub: hub 198.51.100.1 / 10.0.0.1, FRR spoke
// 198.51.100.2 / 10.0.0.2), the NHRP part of the GRE payload.

// frrDynamicRegistration is FRR's registration request with
// `ip nhrp nhs dynamic nbma 198.51.100.1` and `registration no-unique`:
// destination protocol address 10.0.0.2, its own (the NHS's is not known
// yet), one CIE with prefix length 32, forward/reverse transit, responder
// and NAT extensions.
const frrDynamicRegistration = "00010800000000000001005c7c5d0034010304000404000200000001c63364020a0000020a000002" +
	"002000000000012c0000000080040000800500008003000000090014002000000000000004000400c63364010000000080000000"

func frrLabHub(t *testing.T) (*nhrpsim.Network, *nhrpsim.Node) {
	t.Helper()
	net := nhrpsim.New()
	hub, err := net.AddNode("hub", "198.51.100.1", nil, engine.Config{Proto: addr("10.0.0.1"), Server: true, HoldingTime: holding})
	if err != nil {
		t.Fatal(err)
	}
	hub.Routes.Add("10.0.0.0/24", true, "")
	if err := net.StartAll(); err != nil {
		t.Fatal(err)
	}
	return net, hub
}

// TestFRRDynamicNHSLearnsHubFromReplyDestination: an FRR spoke with a
// dynamic NHS takes the NHS's protocol address from the registration
// reply's destination protocol address (it ignores the Responder Address
// extension), so the reply must carry the hub's own address there, as
// FRR's own hub does; copying the request's (the spoke's own address)
// leaves FRR with an NHS entry for itself and no route to the hub.
func TestFRRDynamicNHSLearnsHubFromReplyDestination(t *testing.T) {
	net, hub := frrLabHub(t)
	frr, err := net.AddNode("frr", "198.51.100.2", nil, engine.Config{Proto: addr("10.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	var replies []*nhrp.Packet
	net.Trace = func(_, _ netip.Addr, dst *nhrpsim.Node, b []byte) {
		if dst == frr {
			p, err := nhrp.Parse(b)
			if err != nil {
				t.Errorf("hub sent an undecodable packet: %v", err)
				return
			}
			replies = append(replies, p)
		}
	}
	b, err := hex.DecodeString(frrDynamicRegistration)
	if err != nil {
		t.Fatal(err)
	}
	net.Inject(frr, hub.Addr, b)
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(replies) != 1 || replies[0].Type != nhrp.TypeRegistrationReply {
		t.Fatalf("hub answered %+v, want one registration reply", replies)
	}
	r := replies[0]
	if r.SrcProto != addr("10.0.0.2") || r.DstProto != addr("10.0.0.1") || r.RequestID != 1 {
		t.Errorf("reply src %v dst %v id %d, want src 10.0.0.2 (the requester) dst 10.0.0.1 (the hub) id 1", r.SrcProto, r.DstProto, r.RequestID)
	}
	if len(r.CIEs) != 1 || r.CIEs[0].Code != nhrp.CIESuccess {
		t.Errorf("reply CIEs %+v, want one success", r.CIEs)
	}
	if ce, ok := cacheEntry(hub, "10.0.0.2", engine.KindRegistered); !ok || ce.NBMA != addr("198.51.100.2") {
		t.Errorf("hub entry for 10.0.0.2: %+v (found %v)", ce, ok)
	}
}
