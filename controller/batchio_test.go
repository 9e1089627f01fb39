package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp"
)

// TestBatchRefusedNeighborGetsCode5 is issue 21's acceptance: a hub handed
// a batch of registrations writes their neighbor entries in one
// transaction; the entry the kernel refuses in the middle of the batch is
// answered with code 5 and dropped from the cache, the others succeed, and
// every reply answers its own request whatever the order of the batch.
func TestBatchRefusedNeighborGetsCode5(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/16"), nil)
		defer stopAll(t, hub)
		time.Sleep(time.Second)
		synctest.Wait()

		const spokes, refusedIdx = 6, 3
		rng := rand.New(rand.NewPCG(21, 21))
		for round := range 4 {
			type spoke struct {
				nbma, proto netip.Addr
				id          uint32
				conn        *kerneltest.PacketConn
			}
			var ss []spoke
			for i := range spokes {
				s := spoke{
					nbma:  netip.AddrFrom4([4]byte{198, 51, byte(101 + round), byte(10 + i)}),
					proto: netip.AddrFrom4([4]byte{10, 0, byte(1 + round), byte(10 + i)}),
					id:    uint32(1000*round + i + 1),
				}
				c, err := netw.Listen(s.nbma)
				if err != nil {
					t.Fatal(err)
				}
				s.conn = c
				ss = append(ss, s)
			}
			refused := ss[refusedIdx].proto
			hub.kernel.RefuseNeighbors(func(o kernel.NeighborOp) error {
				if o.Addr == refused {
					return syscall.ENOBUFS
				}
				return nil
			})
			order := rng.Perm(spokes)
			var batch []packet
			for _, i := range order {
				b, err := nhrp.NewRegistrationRequest(ss[i].nbma, ss[i].proto, netip.MustParseAddr("10.0.0.1"), ss[i].id, 600, 0, false).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, packet{from: ss[i].nbma, b: b})
			}
			before := len(hub.kernel.NeighborBatches())
			if err := hub.ctl.run(context.Background(), func() { hub.ctl.handleBatch(batch) }); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()

			name := fmt.Sprintf("round %d (order %v)", round, order)
			for i, s := range ss {
				want := nhrp.CIESuccess
				if i == refusedIdx {
					want = nhrp.CIEInsufficientResources
				}
				ds := []kernel.Datagram{{B: make([]byte, maxPacket)}}
				n, err := s.conn.ReadBatch(ds)
				if err != nil || n != 1 {
					t.Fatalf("%s: spoke %d: %d replies, %v", name, i, n, err)
				}
				p, err := nhrp.Parse(ds[0].B)
				if err != nil {
					t.Fatalf("%s: spoke %d: %v", name, i, err)
				}
				if p.Type != nhrp.TypeRegistrationReply || p.RequestID != s.id || p.SrcProto != s.proto || len(p.CIEs) != 1 || p.CIEs[0].Code != want {
					t.Errorf("%s: spoke %d (%s) got %s id %d for %s, codes %v; want its reply (id %d) with %s",
						name, i, s.proto, p.Type, p.RequestID, p.SrcProto, cieCodes(p), s.id, want)
				}
				_ = s.conn.Close()
			}
			// One transaction for the batch, then the refused entry's
			// removal (a delete of nothing).
			if d := cmp.Diff([]int{spokes, 1}, hub.kernel.NeighborBatches()[before:]); d != "" {
				t.Errorf("%s: neighbor transactions (-want +got):\n%s", name, d)
			}
			for i, s := range ss {
				inKernel := hub.has(fmt.Sprintf("neigh %s lladdr %s ", s.proto, s.nbma))
				var inCache bool
				if err := hub.ctl.run(context.Background(), func() { _, inCache = hub.ctl.eng.Entry(s.proto) }); err != nil {
					t.Fatal(err)
				}
				if want := i != refusedIdx; inKernel != want || inCache != want {
					t.Errorf("%s: spoke %d (%s): in kernel %v, in cache %v, want %v", name, i, s.proto, inKernel, inCache, want)
				}
			}
		}
		var accepted, refused uint64
		if err := hub.ctl.run(context.Background(), func() {
			cs := hub.ctl.eng.Counters()
			accepted, refused = cs["registrations_accepted"], cs["registrations_refused"]
		}); err != nil {
			t.Fatal(err)
		}
		if accepted != 4*(spokes-1) || refused != 4 {
			t.Errorf("registrations accepted %d refused %d, want %d and 4", accepted, refused, 4*(spokes-1))
		}
	})
}

func cieCodes(p *nhrp.Packet) []string {
	var out []string
	for _, c := range p.CIEs {
		out = append(out, c.Code.String())
	}
	return out
}
