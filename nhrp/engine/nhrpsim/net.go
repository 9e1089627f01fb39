package nhrpsim

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// NAT is a NAT box: nodes behind it leave with its public address; GRE
// coming back is delivered to the inside node that last sent to the
// outside address (plain GRE carries no ports, so two inside nodes talking
// to the same outside host cannot be told apart, as on a real NAT).
type NAT struct {
	Public  netip.Addr
	mapping map[netip.Addr]*Node // outside address -> inside node
}

// Node is one NHRP speaker.
type Node struct {
	Name   string
	Addr   netip.Addr // its own (claimed) NBMA address
	NAT    *NAT       // nil: public
	Engine *engine.Engine
	Routes *Routes
	Neigh  *Neigh
	Events []engine.Event
	// Down cuts the node off the network (both directions).
	Down bool
	net  *Network
}

type delivery struct {
	src *Node
	to  netip.Addr
	b   []byte
}

// Network connects nodes.
type Network struct {
	Clock *Clock
	// IPsec models IPsec between claimed NBMA addresses (tunnel mode
	// behind NAT) by what each node's IPsec layer reports to its engine
	// (engine.SetProtections, identity = node name): an SA with every node
	// of its own address realm and with every public node (a node can
	// initiate towards them at any time); a public node has an SA with a
	// node behind NAT once that node has sent to it (the NATed side
	// initiates). Peers behind NAT are reached at their claimed address
	// through their SA. Set it before StartAll. Tests that need another
	// protection set leave IPsec off and call SetProtections themselves.
	IPsec bool
	// Drop, when set, drops packets for which it returns true (link
	// failures between two addresses).
	Drop func(src, dst netip.Addr, b []byte) bool
	// Dropped counts undeliverable packets by reason.
	Dropped map[string]int
	// Delivered counts delivered packets.
	Delivered int
	// Trace, when set, sees every delivered packet.
	Trace func(src, from netip.Addr, dst *Node, b []byte)

	nodes map[netip.Addr]*Node
	nats  map[netip.Addr]*NAT
	sas   map[[2]netip.Addr]bool
	newSA bool // an SA came up since the protections were last pushed
	queue []delivery
	order []*Node
}

// New returns an empty network whose clock starts at a fixed instant.
func New() *Network {
	return &Network{
		Clock:   NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		Dropped: map[string]int{},
		nodes:   map[netip.Addr]*Node{},
		nats:    map[netip.Addr]*NAT{},
		sas:     map[[2]netip.Addr]bool{},
	}
}

// AddNAT adds a NAT box with the given public address.
func (n *Network) AddNAT(public string) *NAT {
	nat := &NAT{Public: netip.MustParseAddr(public), mapping: map[netip.Addr]*Node{}}
	n.nats[nat.Public] = nat
	return nat
}

// Limits are the engine limits AddNode gives a node whose Config leaves
// them unset: generous, so that a simulation is bounded by what it tests,
// not by them. The engine has no defaults for these (dmvpnd takes them
// from its configuration); a test of a limit sets it in its Config.
var Limits = struct {
	MaxCache, MaxPending, AddressesPerPeer, MaxCachePerSource int
	SourceRate                                                float64
}{MaxCache: 65536, MaxPending: 4096, AddressesPerPeer: 1, MaxCachePerSource: 64, SourceRate: 200}

// WithLimits returns cfg with its unset limits taken from Limits.
func WithLimits(cfg engine.Config) engine.Config {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	set(&cfg.MaxCache, Limits.MaxCache)
	set(&cfg.MaxPending, Limits.MaxPending)
	set(&cfg.AddressesPerPeer, Limits.AddressesPerPeer)
	set(&cfg.MaxCachePerSource, Limits.MaxCachePerSource)
	if cfg.SourceRate == 0 {
		cfg.SourceRate = Limits.SourceRate
	}
	return cfg
}

// AddNode creates a node at NBMA address addr (behind nat when non-nil)
// running an engine with cfg; Clock, Conn, Router, Binder and Events are
// filled in, and unset limits taken from Limits (WithLimits). NBMA
// defaults to addr. The engine is not started.
func (n *Network) AddNode(name, addr string, nat *NAT, cfg engine.Config) (*Node, error) {
	cfg = WithLimits(cfg)
	nd := &Node{Name: name, Addr: netip.MustParseAddr(addr), NAT: nat, Routes: &Routes{}, Neigh: &Neigh{}, net: n}
	if _, dup := n.nodes[nd.Addr]; dup {
		return nil, fmt.Errorf("nhrpsim: duplicate address %s", nd.Addr)
	}
	if !cfg.NBMA.IsValid() {
		cfg.NBMA = nd.Addr
	}
	cfg.Clock = n.Clock
	cfg.Conn = nd
	if cfg.Router == nil {
		cfg.Router = nd.Routes
	}
	if cfg.Binder == nil {
		cfg.Binder = nd.Neigh
	}
	user := cfg.Events
	cfg.Events = func(ev engine.Event) {
		nd.Events = append(nd.Events, ev)
		if user != nil {
			user(ev)
		}
	}
	e, err := engine.New(cfg)
	if err != nil {
		return nil, err
	}
	nd.Engine = e
	n.nodes[nd.Addr] = nd
	n.order = append(n.order, nd)
	return nd, nil
}

// Node returns the node at addr.
func (n *Network) Node(addr string) *Node { return n.nodes[netip.MustParseAddr(addr)] }

// ErrDown is returned by WriteTo on a node that is down.
var ErrDown = errors.New("nhrpsim: node down")

// WriteTo implements engine.Conn: the packet is queued for delivery.
func (nd *Node) WriteTo(b []byte, to netip.Addr) error {
	if nd.Down {
		return ErrDown
	}
	nd.net.queue = append(nd.net.queue, delivery{src: nd, to: to, b: append([]byte(nil), b...)})
	return nil
}

// Inject queues raw bytes as if src had sent them to dst.
func (n *Network) Inject(src *Node, dst netip.Addr, b []byte) {
	n.queue = append(n.queue, delivery{src: src, to: dst, b: append([]byte(nil), b...)})
}

// Run delivers queued packets (and what they cause) until the queue is
// empty. It fails after a million deliveries (a packet storm).
func (n *Network) Run() error {
	for steps := 0; len(n.queue) > 0; steps++ {
		if steps > 1_000_000 {
			return errors.New("nhrpsim: packet storm: queue never drained")
		}
		d := n.queue[0]
		n.queue = n.queue[1:]
		n.deliver(d)
	}
	return nil
}

func (n *Network) drop(reason string) { n.Dropped[reason]++ }

func (n *Network) deliver(d delivery) {
	if d.src.Down {
		n.drop("source down")
		return
	}
	if n.Drop != nil && n.Drop(d.src.Addr, d.to, d.b) {
		n.drop("filtered")
		return
	}
	dst, from, _, ok := n.route(d.src, d.to)
	if !ok {
		return
	}
	if dst.Down {
		n.drop("destination down")
		return
	}
	if n.IPsec && n.newSA {
		n.newSA = false
		n.protectAll()
	}
	n.Delivered++
	if n.Trace != nil {
		n.Trace(d.src.Addr, from, dst, d.b)
	}
	dst.Engine.HandlePacket(from, d.b)
}

func saKey(a, b netip.Addr) [2]netip.Addr {
	if b.Less(a) {
		a, b = b, a
	}
	return [2]netip.Addr{a, b}
}

// route finds the receiving node and the GRE source / outer source it sees.
func (n *Network) route(src *Node, to netip.Addr) (dst *Node, from, outer netip.Addr, ok bool) {
	srcPublic := src.Addr
	if src.NAT != nil {
		srcPublic = src.NAT.Public
		if !n.IPsec {
			src.NAT.mapping[to] = src
		}
	}
	if t := n.nodes[to]; t != nil {
		switch {
		case t.NAT == src.NAT:
			return t, src.Addr, src.Addr, true
		case t.NAT != nil: // private address in another realm
			if n.IPsec && n.sas[saKey(src.Addr, t.Addr)] {
				return t, src.Addr, srcPublic, true
			}
			n.drop("private address unreachable")
			return nil, from, outer, false
		default: // public target, source behind NAT
			if n.IPsec {
				if k := saKey(src.Addr, t.Addr); !n.sas[k] {
					n.sas[k] = true // the NATed side initiates
					n.newSA = true
				}
				return t, src.Addr, srcPublic, true
			}
			return t, srcPublic, srcPublic, true
		}
	}
	if nat := n.nats[to]; nat != nil {
		if nat == src.NAT || n.IPsec {
			n.drop("sent to a NAT address")
			return nil, from, outer, false
		}
		inside := nat.mapping[srcPublic]
		if inside == nil {
			n.drop("no NAT mapping")
			return nil, from, outer, false
		}
		return inside, srcPublic, srcPublic, true
	}
	n.drop("no such address")
	return nil, from, outer, false
}

// Advance moves the clock forward by d, running every timer in deadline
// order across all nodes and delivering what they send.
func (n *Network) Advance(d time.Duration) error {
	target := n.Clock.Now().Add(d)
	for {
		var next time.Time
		found := false
		for _, nd := range n.order {
			if t, ok := nd.Engine.NextDeadline(); ok && (!found || t.Before(next)) {
				next, found = t, true
			}
		}
		if !found || next.After(target) {
			break
		}
		if next.After(n.Clock.Now()) {
			n.Clock.Set(next)
		}
		for _, nd := range n.order {
			if t, ok := nd.Engine.NextDeadline(); ok && !t.After(n.Clock.Now()) {
				nd.Engine.Tick()
			}
		}
		if err := n.Run(); err != nil {
			return err
		}
	}
	n.Clock.Set(target)
	return nil
}

// protectAll reports every node's SAs to its engine (see Network.IPsec).
func (n *Network) protectAll() {
	for _, nd := range n.order {
		var ps []engine.Protection
		for _, o := range n.order {
			switch {
			case o == nd:
			case o.NAT == nd.NAT, o.NAT == nil:
				ps = append(ps, engine.Protection{NBMA: o.Addr, Identity: o.Name})
			case nd.NAT == nil && n.sas[saKey(nd.Addr, o.Addr)]:
				ps = append(ps, engine.Protection{NBMA: o.Addr, Outer: o.NAT.Public, Identity: o.Name})
			}
		}
		nd.Engine.SetProtections(ps)
	}
}

// StartAll starts every engine and delivers the first packets.
func (n *Network) StartAll() error {
	if n.IPsec {
		n.protectAll()
	}
	for _, nd := range n.order {
		nd.Engine.Start()
	}
	return n.Run()
}

// EventsOf returns the node's events of kind k.
func (nd *Node) EventsOf(k engine.EventKind) []engine.Event {
	var out []engine.Event
	for _, ev := range nd.Events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}
