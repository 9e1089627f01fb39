package nhrp_test

import (
	"path/filepath"
	"testing"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// captured returns the first packet of type typ in frr-phase3.pcap with at
// least minLen octets: frame 1 (registration request, 92 octets) and
// frame 25 (resolution reply forwarded by the hub with transit records,
// 140 octets).
func captured(tb testing.TB, typ nhrp.Type, minLen int) []byte {
	for _, p := range readNHRP(tb, filepath.Join("testdata", "frr-phase3.pcap")) {
		if len(p.NHRP) >= minLen && nhrp.Type(p.NHRP[17]) == typ {
			return p.NHRP
		}
	}
	tb.Fatalf("no %s in the capture", typ)
	return nil
}

func benchDecode(b *testing.B, pkt []byte) {
	var p nhrp.Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := p.Unmarshal(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, pkt []byte) {
	p, err := nhrp.Parse(pkt)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if buf, err = p.AppendMarshal(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRegistrationRequest(b *testing.B) {
	benchDecode(b, captured(b, nhrp.TypeRegistrationRequest, 0))
}

func BenchmarkDecodeResolutionReply(b *testing.B) {
	benchDecode(b, captured(b, nhrp.TypeResolutionReply, 140))
}

func BenchmarkEncodeRegistrationRequest(b *testing.B) {
	benchEncode(b, captured(b, nhrp.TypeRegistrationRequest, 0))
}

func BenchmarkEncodeResolutionReply(b *testing.B) {
	benchEncode(b, captured(b, nhrp.TypeResolutionReply, 140))
}

// BenchmarkMarshalResolutionReply is Marshal with its one allocation (the
// returned buffer), for comparison with AppendMarshal.
func BenchmarkMarshalResolutionReply(b *testing.B) {
	p, err := nhrp.Parse(captured(b, nhrp.TypeResolutionReply, 140))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeIntoReusedPacketAllocatesNothing: once a Packet's slices have
// grown, Unmarshal allocates nothing, for every captured and sample
// packet; AppendMarshal into a large enough buffer allocates nothing.
func TestDecodeIntoReusedPacketAllocatesNothing(t *testing.T) {
	inputs := capturedAndSamples(t)
	var p nhrp.Packet
	for _, in := range inputs {
		if err := p.Unmarshal(in); err != nil { // grow the slices
			t.Fatal(err)
		}
	}
	buf := make([]byte, 0, 1500)
	for i, in := range inputs {
		if n := testing.AllocsPerRun(50, func() {
			if err := p.Unmarshal(in); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("input %d: Unmarshal into a reused Packet: %v allocs/op, want 0", i, n)
		}
		if n := testing.AllocsPerRun(50, func() {
			var err error
			if buf, err = p.AppendMarshal(buf[:0]); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("input %d: AppendMarshal: %v allocs/op, want 0", i, n)
		}
	}
}
