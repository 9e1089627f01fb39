package engine_test

import (
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/google/go-cmp/cmp"
)

// resolutionReply crafts a reply to requester src for target, naming
// client proto at nbma with prefix length plen.
func resolutionReply(t *testing.T, srcNBMA, srcProto, target string, id uint32, proto, nbma string, plen uint8) []byte {
	t.Helper()
	p := nhrp.NewResolutionRequest(addr(srcNBMA), addr(srcProto), addr(target), id, 600, 0)
	p.Type = nhrp.TypeResolutionReply
	p.CIEs = []nhrp.CIE{{PrefixLength: plen, HoldingTime: 600, ClientNBMA: addr(nbma), ClientProto: addr(proto)}}
	return marshal(t, p)
}

// A malicious Phase 3 responder answers with a third spoke's tunnel
// address, or with a prefix wider than the hub's route towards it: the
// hub relays nothing and changes nothing.
func TestAttackPhase3ReplyRelayedByHub(t *testing.T) {
	for _, tc := range []struct {
		name, target, proto, nbma string
		plen                      uint8
		wantDrop                  string
	}{
		{"third spoke's address", "10.0.3.7", "10.255.0.3", attackerNBMA, 1, "drop_not_registered"},
		{"own address, prefix /1", "10.0.3.7", "10.255.0.66", attackerNBMA, 1, "drop_prefix_too_wide"},
		{"own address, target behind another spoke", "10.0.3.7", "10.255.0.66", attackerNBMA, 24, "drop_prefix_too_wide"},
		{"own address, another NBMA", "10.0.66.7", "10.255.0.66", victimNBMA, 24, "drop_claim_mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			for _, s := range []struct{ nbma, proto string }{{"198.51.100.2", "10.255.0.2"}, {"198.51.100.3", "10.255.0.3"}, {attackerNBMA, "10.255.0.66"}} {
				r.recv(s.nbma, registration(t, s.nbma, s.proto, 1, false, cie{s.proto, s.nbma, 600}))
			}
			r.node.Routes.Add("10.0.3.0/24", true, "10.255.0.3")
			r.node.Routes.Add("10.0.66.0/24", true, "10.255.0.66")
			before := r.state()
			sent := r.recv(attackerNBMA, resolutionReply(t, "198.51.100.2", "10.255.0.2", tc.target, 7, tc.proto, tc.nbma, tc.plen))
			if len(sent) != 0 {
				t.Errorf("hub relayed %d packets", len(sent))
			}
			if diff := cmp.Diff(before, r.state()); diff != "" {
				t.Errorf("state (-before +after):\n%s", diff)
			}
			if r.counter(tc.wantDrop) != 1 {
				t.Errorf("%s = %d, want 1 (counters %v)", tc.wantDrop, r.counter(tc.wantDrop), r.node.Engine.Counters())
			}
		})
	}
	// The same reply from the spoke that owns the prefix is relayed.
	r := newRig(t)
	for _, s := range []struct{ nbma, proto string }{{"198.51.100.2", "10.255.0.2"}, {"198.51.100.3", "10.255.0.3"}} {
		r.recv(s.nbma, registration(t, s.nbma, s.proto, 1, false, cie{s.proto, s.nbma, 600}))
	}
	r.node.Routes.Add("10.0.3.0/24", true, "10.255.0.3")
	if sent := r.recv("198.51.100.3", resolutionReply(t, "198.51.100.2", "10.255.0.2", "10.0.3.7", 7, "10.255.0.3", "198.51.100.3", 24)); len(sent) != 1 || sent[0].to != addr("198.51.100.2") {
		t.Errorf("honest reply relayed as %+v, want one packet to the requester", sent)
	}
}

// spokeRig is spoke 2 registered with the hub, a route 10.0.0.0/8 via
// the hub, and request ids 100, 101, ...
func spokeRig(t *testing.T, mod ...func(*engine.Config)) *rig {
	t.Helper()
	cfg := spokeConfig(2)
	next := uint32(100)
	cfg.RequestIDs = func() uint32 { next++; return next - 1 }
	for _, m := range mod {
		m(&cfg)
	}
	r := newRigNode(t, "198.51.100.2", cfg)
	r.node.Routes.Add("10.0.0.0/8", true, hubProto)
	r.node.Routes.Add("10.0.2.0/24", false, "")
	r.node.Engine.Start()
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	reply := marshal(t, regReply(t, r.sent[0].p))
	r.recv(hubNBMA, reply)
	if got := nhsStates(r.node); got != "192.0.2.1=up" {
		t.Fatalf("spoke not registered: %s", got)
	}
	return r
}

func regReply(t *testing.T, req *nhrp.Packet) *nhrp.Packet {
	t.Helper()
	b := marshal(t, req)
	p, err := nhrp.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	p.Type = nhrp.TypeRegistrationReply
	return p
}

// Off path, without IPsec: a reply, error indication or purge is taken
// only from the node the request went to (or the entry's owner), and
// traffic indications only from an NHS; request ids are not guessable.
func TestAttackOffPathForgeries(t *testing.T) {
	t.Run("reply from another NBMA", func(t *testing.T) {
		r := spokeRig(t)
		r.node.Engine.Resolve(addr("10.0.3.7"))
		r.net.Run()
		before := r.state()
		r.recv(attackerNBMA, resolutionReply(t, "198.51.100.2", "10.255.0.2", "10.0.3.7", 101, "10.255.0.66", attackerNBMA, 8))
		if diff := cmp.Diff(before, r.state()); diff != "" || r.counter("drop_wrong_responder") != 1 {
			t.Errorf("drop_wrong_responder %d, state (-before +after):\n%s", r.counter("drop_wrong_responder"), diff)
		}
	})
	t.Run("error indication from another NBMA", func(t *testing.T) {
		r := spokeRig(t)
		r.node.Engine.Resolve(addr("10.0.3.7"))
		r.net.Run()
		req := marshal(t, r.sent[len(r.sent)-1].p)
		r.recv(attackerNBMA, marshal(t, nhrp.NewErrorIndication(addr(attackerNBMA), addr("10.255.0.66"), addr("10.255.0.2"), nhrp.ErrorLoopDetected, 0, req)))
		if _, neg := cacheEntry(r.node, "10.0.3.7", engine.KindNegative); neg || r.counter("drop_unmatched_reply") != 1 {
			t.Errorf("forged error indication: negative entry %v, drop_unmatched_reply %d", neg, r.counter("drop_unmatched_reply"))
		}
	})
	t.Run("unauthenticated error indication", func(t *testing.T) {
		r := spokeRig(t, func(c *engine.Config) { c.AuthPassword = []byte("pw") })
		r.node.Engine.Resolve(addr("10.0.3.7"))
		r.net.Run()
		req := marshal(t, r.sent[len(r.sent)-1].p)
		r.recv(hubNBMA, marshal(t, nhrp.NewErrorIndication(addr(hubNBMA), addr(hubProto), addr("10.255.0.2"), nhrp.ErrorLoopDetected, 0, req)))
		if _, neg := cacheEntry(r.node, "10.0.3.7", engine.KindNegative); neg || r.counter("drop_auth") != 1 {
			t.Errorf("unauthenticated error indication: negative entry %v, drop_auth %d", neg, r.counter("drop_auth"))
		}
	})
	t.Run("traffic indication not from an NHS", func(t *testing.T) {
		r := spokeRig(t)
		n := len(r.sent)
		r.recv(attackerNBMA, marshal(t, nhrp.NewTrafficIndication(addr(attackerNBMA), addr("10.255.0.66"), addr("10.0.2.5"), ipv4("10.0.2.5", "10.0.3.7"))))
		if len(r.sent) != n || r.counter("drop_not_nhs") != 1 || r.counter("resolutions_sent") != 0 {
			t.Errorf("sent %d, drop_not_nhs %d, resolutions_sent %d; want 0, 1, 0", len(r.sent)-n, r.counter("drop_not_nhs"), r.counter("resolutions_sent"))
		}
	})
	t.Run("spoofed purge of a resolved peer", func(t *testing.T) {
		r := spokeRig(t)
		r.node.Engine.Resolve(addr("10.255.0.3"))
		r.net.Run()
		r.recv(hubNBMA, resolutionReply(t, "198.51.100.2", "10.255.0.2", "10.255.0.3", 101, "10.255.0.3", "198.51.100.3", 255))
		before := r.state()
		if before == "" || r.counter("resolution_timeouts") != 0 {
			t.Fatalf("no resolved entry: %q", before)
		}
		r.recv(attackerNBMA, marshal(t, nhrp.NewPurgeRequest(addr(attackerNBMA), addr(hubProto), addr("10.255.0.2"), 9, true, addr("10.255.0.3"))))
		if diff := cmp.Diff(before, r.state()); diff != "" || r.counter("drop_wrong_responder") != 1 {
			t.Errorf("drop_wrong_responder %d, state (-before +after):\n%s", r.counter("drop_wrong_responder"), diff)
		}
	})
}

// Request ids come from a seeded generator, not a counter from 1.
func TestRequestIDsUnpredictable(t *testing.T) {
	first := func() uint32 {
		r := newRigNode(t, "198.51.100.2", spokeConfig(2))
		r.node.Engine.Start()
		r.net.Run()
		return r.sent[0].p.RequestID
	}
	a, b := first(), first()
	if a == b || a < 1<<16 && b < 1<<16 {
		t.Errorf("first request ids %d and %d: predictable", a, b)
	}
}
