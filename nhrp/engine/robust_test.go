package engine_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

// validPackets returns encodings of every packet type as the nodes would
// see them, to mutate.
func validPackets(t testing.TB) [][]byte {
	src, sp, dp := addr("198.51.100.9"), addr("10.255.0.9"), addr("10.255.0.1")
	ps := []*nhrp.Packet{
		nhrp.NewRegistrationRequest(src, sp, dp, 7, 600, 0, true),
		nhrp.NewResolutionRequest(src, sp, addr("10.255.0.2"), 8, 600, 0),
		nhrp.NewPurgeRequest(src, sp, dp, 9, false, addr("10.255.0.2")),
		nhrp.NewTrafficIndication(src, sp, addr("10.0.2.1"), ipv4("10.0.9.1", "10.0.2.1")),
		nhrp.NewErrorIndication(src, sp, dp, nhrp.ErrorLoopDetected, 0, make([]byte, 40)),
	}
	reply := nhrp.NewResolutionRequest(src, sp, addr("10.255.0.2"), 8, 600, 0)
	reply.Type = nhrp.TypeResolutionReply
	reply.SetNATAddress(nhrp.CIE{ClientNBMA: src, ClientProto: sp})
	ps = append(ps, reply)
	var out [][]byte
	for _, p := range ps {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// robustTopo is a hub and a registered spoke whose per-source rate limit
// is off, so that noise from one source reaches the decoder and the
// engine's logic however much of it there is.
func robustTopo(t testing.TB) (*nhrpsim.Network, []*nhrpsim.Node) {
	net := nhrpsim.New()
	cfg := hubConfig()
	cfg.SourceRate = -1
	hub, err := net.AddNode("hub", hubNBMA, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hub.Routes.Add("10.0.0.0/8", true, "10.255.0.2")
	scfg := spokeConfig(2)
	scfg.SourceRate = -1
	s2, _ := net.AddNode("s2", "198.51.100.2", nil, scfg)
	s2.Routes.Add("10.0.2.0/24", false, "")
	if err := net.StartAll(); err != nil {
		t.Fatal(err)
	}
	return net, []*nhrpsim.Node{hub, s2}
}

func TestMalformedPacketsCountedNeverPanic(t *testing.T) {
	net, nodes := robustTopo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	valid := validPackets(t)
	from := addr("198.51.100.9")
	const n = 20000
	for i := range n {
		var b []byte
		switch i % 3 {
		case 0: // random bytes
			b = make([]byte, rng.IntN(200))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		default: // a valid packet with a few bytes flipped, checksum fixed or not
			b = append([]byte(nil), valid[rng.IntN(len(valid))]...)
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
			if i%3 == 1 {
				nhrpcaptest.SetNHRPChecksum(b)
			}
		}
		nd := nodes[i%2]
		nd.Engine.HandlePacket(from, b)
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		c := nd.Engine.Counters()
		if c["rx_packets"] < n/2 || c["drop_rate_limited"] != 0 {
			t.Errorf("%s: rx_packets %d, rate limited %d", nd.Name, c["rx_packets"], c["drop_rate_limited"])
		}
		// Every packet went past the limiter into the decoder: far more
		// than the ~400 a rate-limited source gets through.
		if decoded := c["rx_packets"] - c["drop_malformed"] - c["drop_checksum"] - c["drop_hop_count"]; c["drop_malformed"]+c["drop_checksum"] < 5000 || decoded < 100 {
			t.Errorf("%s: malformed %d checksum %d decoded %d: the decoder was not exercised", nd.Name, c["drop_malformed"], c["drop_checksum"], decoded)
		}
		if c["drop_malformed"] == 0 || c["drop_checksum"] == 0 {
			t.Errorf("%s: malformed %d checksum %d, want both counted", nd.Name, c["drop_malformed"], c["drop_checksum"])
		}
	}
	// The registered spoke survived the noise.
	if got := nhsStates(nodes[1]); got != "192.0.2.1=up" {
		t.Errorf("spoke after the noise: %s", got)
	}
}

func TestPerSourceRateLimit(t *testing.T) {
	cfg := hubConfig()
	cfg.SourceRate, cfg.SourceBurst = 1, 5
	hub, _ := nhrpsim.New().AddNode("hub", hubNBMA, nil, cfg)
	b := validPackets(t)[0]
	for range 10 {
		hub.Engine.HandlePacket(addr("198.51.100.9"), b)
	}
	hub.Engine.HandlePacket(addr("198.51.100.10"), b)
	c := hub.Engine.Counters()
	// Five from .9 pass (one registration, four refreshes), five are
	// dropped; .10 has its own bucket and gets through (and is refused:
	// the unique address is held by .9).
	if c["drop_rate_limited"] != 5 || c["registrations_accepted"] != 5 || c["registrations_refused"] != 1 {
		t.Errorf("rate limited %d accepted %d refused %d, want 5, 5, 1",
			c["drop_rate_limited"], c["registrations_accepted"], c["registrations_refused"])
	}
}

func FuzzHandlePacket(f *testing.F) {
	for _, b := range validPackets(f) {
		f.Add(b)
	}
	net, nodes := robustTopo(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fixed := append([]byte(nil), b...)
		nhrpcaptest.SetNHRPChecksum(fixed) // get past the checksum to the engine's logic
		for _, nd := range nodes {
			nd.Engine.HandlePacket(netip.MustParseAddr("198.51.100.9"), b)
			nd.Engine.HandlePacket(netip.MustParseAddr("198.51.100.9"), fixed)
		}
		if err := net.Run(); err != nil {
			t.Fatal(err)
		}
	})
}
