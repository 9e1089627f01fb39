package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// TestCrossingsStayBoundedWhileBehind: a hub that stays behind for good
// (every answer remembered, each forgotten only once a later packet is
// handled) keeps its memory of answers proportional to what is
// remembered, not to how many answers it ever sent.
func TestCrossingsStayBoundedWhileBehind(t *testing.T) {
	e := &Engine{}
	t0 := time.Unix(1_000_000, 0)
	p := &nhrp.Packet{SrcProto: netip.MustParseAddr("10.0.0.2"), CIEs: []nhrp.CIE{{Code: nhrp.CIESuccess}}}
	for i := range 100_000 {
		// Each request waited 1 s; the packet handled with it was
		// received 10 answers back.
		e.now = t0.Add(time.Duration(i) * time.Millisecond)
		in := &inbound{from: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), p: p, received: e.now.Add(-time.Second)}
		p.RequestID = uint32(i)
		e.crossings.forgetBefore(e.now.Add(-10 * time.Millisecond))
		e.noteAnswered(in, p)
		if live := len(e.crossings.order) - e.crossings.head; live > 11 {
			t.Fatalf("answer %d: %d remembered, want at most 11", i, live)
		}
		if c := cap(e.crossings.order); c > 64 {
			t.Fatalf("answer %d: order holds room for %d answers while remembering %d", i, c, len(e.crossings.order)-e.crossings.head)
		}
	}
}
