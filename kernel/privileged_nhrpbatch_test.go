package kernel

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestPrivNHRPBatch sends numbered packets from two spokes with sendmmsg
// and reads them at the hub with recvmmsg: every packet arrives exactly
// once with its sender's NBMA address, and one call takes everything
// already queued. The hub answers all in one WriteBatch. Order is not
// checked: veth hands packets to the per-CPU backlog of the CPU that sent
// them, and sendmmsg may migrate between CPUs, so the path reorders.
func TestPrivNHRPBatch(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	hc := hub.listenNHRP(t, 0)
	var sc []*NHRPConn
	for _, s := range spokes {
		sc = append(sc, s.listenNHRP(t, 0))
	}
	const per = 200
	sent := time.Now()
	for i, c := range sc {
		ds := make([]Datagram, per)
		for j := range ds {
			ds[j] = Datagram{B: []byte{byte(i), byte(j >> 8), byte(j), 0xaa}, NBMA: netip.AddrFrom4([4]byte{172, 16, byte(i + 1), 1})}
		}
		if n, err := c.WriteBatch(ds); n != per || err != nil {
			t.Fatalf("spoke %d: WriteBatch sent %d of %d: %v", i, n, per, err)
		}
	}
	waitFor(t, "all packets queued at the hub", 30*time.Second, func() (bool, error) {
		st, err := hc.Stats()
		return st.Packets >= 2*per, err
	})
	ds := make([]Datagram, 4*per)
	for i := range ds {
		ds[i].B = make([]byte, 64)
	}
	n, err := hc.ReadBatch(ds)
	if err != nil {
		t.Fatal(err)
	}
	read := time.Now()
	if n != 2*per {
		t.Fatalf("one ReadBatch took %d packets, want all %d queued", n, 2*per)
	}
	// Each packet carries the kernel's receive time: after it was sent,
	// before it was read, in queue order per spoke.
	last := map[netip.Addr]time.Time{}
	for i, d := range ds[:n] {
		if d.Received.Before(sent) || d.Received.After(read) {
			t.Fatalf("packet %d: received %v, not within [%v, %v]", i, d.Received, sent, read)
		}
		if d.Received.Before(last[d.NBMA]) {
			t.Fatalf("packet %d from %s: received %v, before the one ahead of it (%v)", i, d.NBMA, d.Received, last[d.NBMA])
		}
		last[d.NBMA] = d.Received
	}
	seen := map[[3]byte]bool{}
	var replies []Datagram
	for _, d := range ds[:n] {
		if len(d.B) != 4 || d.B[0] > 1 || int(d.B[1])<<8|int(d.B[2]) >= per || d.B[3] != 0xaa {
			t.Fatalf("packet %x from %s: not one that was sent", d.B, d.NBMA)
		}
		s := int(d.B[0])
		if d.NBMA != spokes[s].nbma || seen[[3]byte(d.B)] {
			t.Fatalf("spoke %d: packet %x from %s: twice, or not from %s", s, d.B, d.NBMA, spokes[s].nbma)
		}
		seen[[3]byte(d.B)] = true
		replies = append(replies, Datagram{B: append([]byte(nil), d.B...), NBMA: d.NBMA})
	}
	if m, err := hc.WriteBatch(replies); m != n || err != nil {
		t.Fatalf("hub WriteBatch sent %d of %d: %v", m, n, err)
	}
	for i, c := range sc {
		got := map[int]bool{}
		buf := make([]Datagram, per)
		for j := range buf {
			buf[j].B = make([]byte, 64)
		}
		for len(got) < per {
			k, err := c.ReadBatch(buf)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range buf[:k] {
				seq := int(d.B[1])<<8 | int(d.B[2])
				if len(d.B) != 4 || int(d.B[0]) != i || seq >= per || got[seq] {
					t.Fatalf("spoke %d: reply %x: not its own, or twice", i, d.B)
				}
				got[seq] = true
			}
		}
	}
	t.Logf("%s", fmt.Sprintf("%d packets in one recvmmsg; %d replies in one WriteBatch", n, n))
}
