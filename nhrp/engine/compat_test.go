package engine_test

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/dmvpnd/dmvpnd/nhrp/nhrpcap/nhrpcaptest"
)

// rawPeer is a node whose engine only serves as an address on the
// network; the test writes packets for it by hand and reads what comes
// back through the trace.
func rawPeer(t *testing.T, tp *topo, nbma, proto string) (*nhrpsim.Node, *[]*nhrp.Packet) {
	nd := tp.add("raw", nbma, nil, engine.Config{Proto: addr(proto)})
	var got []*nhrp.Packet
	tp.net.Trace = func(_, _ netip.Addr, dst *nhrpsim.Node, b []byte) {
		if dst == nd {
			if p, err := nhrp.Parse(b); err == nil {
				got = append(got, p)
			}
		}
	}
	return nd, &got
}

func marshal(t *testing.T, p *nhrp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAcceptsFRRStyleRegistration(t *testing.T) {
	tp := newTopo(t)
	raw, got := rawPeer(t, tp, "198.51.100.9", "10.255.0.9")
	// FRR: hop count 1, prefix length 32, no client addresses, NAT
	// extension naming the NHS.
	p := nhrp.NewRegistrationRequest(raw.Addr, addr("10.255.0.9"), addr(hubProto), 42, 600, 1400, false)
	p.CIEs[0].PrefixLength = 32
	p.SetNATAddress(nhrp.CIE{ClientNBMA: addr(hubNBMA), ClientProto: addr(hubProto)})
	tp.net.Inject(raw, addr(hubNBMA), marshal(t, p))
	tp.run()
	if len(*got) != 1 || (*got)[0].Type != nhrp.TypeRegistrationReply || (*got)[0].CIEs[0].Code != nhrp.CIESuccess {
		t.Fatalf("replies %+v, want one successful registration reply", *got)
	}
	r := (*got)[0]
	if r.RequestID != 42 || r.Extension(nhrp.ExtensionResponderAddress).CIEs[0].ClientProto != addr(hubProto) {
		t.Errorf("reply id %d responder %+v", r.RequestID, r.Extension(nhrp.ExtensionResponderAddress))
	}
	if ce, ok := cacheEntry(tp.hub, "10.255.0.9", engine.KindRegistered); !ok || ce.NBMA != raw.Addr {
		t.Errorf("hub entry %+v", ce)
	}
}

func TestUnknownCompulsoryExtensionAnsweredWithError1(t *testing.T) {
	tp := newTopo(t)
	raw, got := rawPeer(t, tp, "198.51.100.9", "10.255.0.9")
	p := nhrp.NewRegistrationRequest(raw.Addr, addr("10.255.0.9"), addr(hubProto), 43, 600, 0, false)
	p.AddExtension(nhrp.Extension{Type: 0x1234, Compulsory: true, Raw: []byte{1, 2, 3, 4}})
	tp.net.Inject(raw, addr(hubNBMA), marshal(t, p))
	tp.run()
	if len(*got) != 1 || (*got)[0].Type != nhrp.TypeErrorIndication || (*got)[0].ErrorCode != nhrp.ErrorUnrecognizedExtension {
		t.Fatalf("answers %+v, want one error indication code 1", *got)
	}
	if len(tp.hub.Engine.Cache()) != 0 {
		t.Error("hub registered despite the unknown compulsory extension")
	}
}

func TestLenientResolutionReplies(t *testing.T) {
	tests := []struct {
		name     string
		code     nhrp.CIECode
		prefix   uint8
		wantPfx  string
		negative string
	}{
		{"prefix 32 is a host entry", nhrp.CIESuccess, 32, "10.255.0.3/32", ""},
		{"prefix 0 is a host entry", nhrp.CIESuccess, 0, "10.255.0.3/32", ""},
		{"FRR code 11 (no binding) is a refusal", 11, 0xFF, "", "code-11"},
		{"RFC code 12", nhrp.CIENoBinding, 0xFF, "", "no-binding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			s2 := tp.spoke(2, "198.51.100.2", nil)
			tp.start()
			// Spoke 3 is played by hand: it never registers.
			raw, _ := rawPeer(t, tp, "198.51.100.3", "10.255.0.3")
			var req *nhrp.Packet
			tp.net.Drop = func(src, dst netip.Addr, b []byte) bool {
				if p, err := nhrp.Parse(b); err == nil && p.Type == nhrp.TypeResolutionRequest && src == s2.Addr && req == nil {
					req = p
					return true
				}
				return false
			}
			s2.Engine.Resolve(addr("10.255.0.3"))
			tp.run()
			if req == nil {
				t.Fatal("no request sent")
			}
			rep := req.Clone()
			rep.Type = nhrp.TypeResolutionReply
			rep.CIEs = []nhrp.CIE{{Code: tc.code, PrefixLength: tc.prefix, HoldingTime: 600, ClientNBMA: raw.Addr, ClientProto: addr("10.255.0.3")}}
			rep.Extensions = nil
			tp.net.Drop = nil
			tp.net.Inject(tp.hub, s2.Addr, marshal(t, rep))
			tp.run()
			if tc.negative != "" {
				wantNegative(t, s2, "10.255.0.3", tc.negative)
				return
			}
			scs := s2.Engine.Shortcuts()
			if len(scs) != 1 || scs[0].Prefix != pfx(tc.wantPfx) {
				t.Errorf("shortcuts %+v, want %s", scs, tc.wantPfx)
			}
		})
	}
}

func TestIPv6Overlay(t *testing.T) {
	net := nhrpsim.New()
	hub, err := net.AddNode("hub", "2001:db8::1", nil, engine.Config{Proto: addr("fd00::1"), Server: true, HoldingTime: holding})
	if err != nil {
		t.Fatal(err)
	}
	nhs := []engine.NHSConfig{{NBMA: addr("2001:db8::1"), Proto: addr("fd00::1")}}
	s2, _ := net.AddNode("s2", "2001:db8::2", nil, engine.Config{Proto: addr("fd00::2"), NHSs: nhs, HoldingTime: holding})
	s3, _ := net.AddNode("s3", "2001:db8::3", nil, engine.Config{Proto: addr("fd00::3"), NHSs: nhs, HoldingTime: holding})
	if err := net.StartAll(); err != nil {
		t.Fatal(err)
	}
	s2.Engine.NeighborMiss(addr("fd00::3"))
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	if hub.Neigh.Len() != 2 || nhsStates(s3) != "2001:db8::1=up" {
		t.Errorf("hub neighbors:\n%s", hub.Neigh)
	}
	if got, _ := s2.Neigh.Lookup(addr("fd00::3")); got != addr("2001:db8::3") || shortcutState(s2, "fd00::3/128") != engine.ShortcutUp {
		t.Errorf("IPv6 spoke-to-spoke: lladdr %v state %v", got, shortcutState(s2, "fd00::3/128"))
	}
}

func TestFRRErrorIndicationWithHopCountZero(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.start()
	var req []byte
	tp.net.Drop = func(src, _ netip.Addr, b []byte) bool {
		if p, err := nhrp.Parse(b); err == nil && p.Type == nhrp.TypeResolutionRequest && req == nil {
			req = append([]byte(nil), b...)
			return true
		}
		return false
	}
	s2.Engine.Resolve(addr("10.9.9.9"))
	tp.run()
	ei := nhrp.NewErrorIndication(addr(hubNBMA), addr("10.9.9.9"), addr("10.255.0.2"), 2 /* FRR: loop */, 0, req)
	b := marshal(t, ei)
	b[9] = 0 // hop count 0, as FRR sends it; fix the checksum
	nhrpcaptest.SetNHRPChecksum(b)
	s2.Engine.HandlePacket(addr(hubNBMA), b)
	wantNegative(t, s2, "10.9.9.9", "error-2") // the request failed by the error indication
}
