package kernel

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestPrivNHRPBatch sends numbered packets from two spokes with sendmmsg
// and reads them at the hub with recvmmsg: every packet arrives once, in
// each sender's order, with its sender's NBMA address, and one call takes
// everything already queued. The hub answers all in one WriteBatch.
func TestPrivNHRPBatch(t *testing.T) {
	hub, spokes := hubAndSpokes(t, 2)
	hc, err := ListenNHRP(ListenNHRPConfig{NetNS: hub.fd, Ifindex: hub.ifindex})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	var sc []*NHRPConn
	for _, s := range spokes {
		c, err := ListenNHRP(ListenNHRPConfig{NetNS: s.fd, Ifindex: s.ifindex})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc = append(sc, c)
	}
	const per = 200
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
	if n != 2*per {
		t.Fatalf("one ReadBatch took %d packets, want all %d queued", n, 2*per)
	}
	next := []int{0, 0}
	var replies []Datagram
	for _, d := range ds[:n] {
		if len(d.B) != 4 || d.B[0] > 1 {
			t.Fatalf("packet %x from %s: not one that was sent", d.B, d.NBMA)
		}
		s := int(d.B[0])
		if seq := int(d.B[1])<<8 | int(d.B[2]); seq != next[s] || d.NBMA != spokes[s].nbma {
			t.Fatalf("spoke %d: packet %d from %s, want %d from %s", s, seq, d.NBMA, next[s], spokes[s].nbma)
		}
		next[s]++
		replies = append(replies, Datagram{B: append([]byte(nil), d.B...), NBMA: d.NBMA})
	}
	if m, err := hc.WriteBatch(replies); m != n || err != nil {
		t.Fatalf("hub WriteBatch sent %d of %d: %v", m, n, err)
	}
	for i, c := range sc {
		got := 0
		buf := make([]Datagram, per)
		for j := range buf {
			buf[j].B = make([]byte, 64)
		}
		for got < per {
			k, err := c.ReadBatch(buf)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range buf[:k] {
				if int(d.B[0]) != i || int(d.B[1])<<8|int(d.B[2]) != got {
					t.Fatalf("spoke %d: reply %x, want number %d", i, d.B, got)
				}
				got++
			}
		}
	}
	t.Logf("%s", fmt.Sprintf("%d packets in one recvmmsg; %d replies in one WriteBatch", n, n))
}
