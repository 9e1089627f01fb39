package engine_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// A controller owns one goroutine per tunnel: it feeds packets, neighbor
// misses and hairpin notifications into the engine, calls Tick when
// NextDeadline has passed, and acts on events. Here the in-memory network
// plays the kernel.
func Example() {
	net := nhrpsim.New()
	hub, _ := net.AddNode("hub", "192.0.2.1", nil, engine.Config{
		Proto: netip.MustParseAddr("10.255.0.1"), Server: true, HoldingTime: 600 * time.Second,
	})
	spoke, _ := net.AddNode("spoke", "198.51.100.2", nil, engine.Config{
		Proto:       netip.MustParseAddr("10.255.0.2"),
		NHSs:        []engine.NHSConfig{{NBMA: netip.MustParseAddr("192.0.2.1"), Proto: netip.MustParseAddr("10.255.0.1")}},
		HoldingTime: 600 * time.Second,
		Events: func(ev engine.Event) {
			if ev.Kind == engine.EventNHS {
				fmt.Println("spoke:", ev)
			}
		},
	})
	_ = net.StartAll()
	next, _ := spoke.Engine.NextDeadline()
	fmt.Println("next timer in", next.Sub(net.Clock.Now()))
	fmt.Print("hub neighbors: ", hub.Neigh)
	// Output:
	// spoke: nhs proto=10.255.0.1 nbma=192.0.2.1 state=probing reason="registration sent"
	// spoke: nhs proto=10.255.0.1 nbma=192.0.2.1 state=up reason="registered"
	// next timer in 3m20s
	// hub neighbors: 10.255.0.2 lladdr 198.51.100.2
}
