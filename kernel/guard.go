package kernel

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// DefaultGuardTable is the nftables table of the cleartext GRE guard. It is
// a table of its own, beside the hairpin trigger's, so that each is replaced
// atomically without touching the other.
const DefaultGuardTable = "dmvpnd_ipsec"

// Names of the guard's counters (nftables named counter objects).
const (
	GuardCounterIn  = "gre_clear_in"
	GuardCounterOut = "gre_clear_out"
)

// Kernel keys that golang.org/x/sys does not name (include/uapi/linux/
// netfilter/nf_tables.h): meta secpath ("meta ipsec") and rt xfrm ("rt
// ipsec"); both load one byte, 1 when the packet came through an SA
// (secpath) or is routed into one (xfrm bundle).
const (
	metaKeySecpath expr.MetaKey = 25 // NFT_META_SECPATH
	rtKeyXfrm      expr.RtKey   = 4  // NFT_RT_XFRM
	objectCounter               = 1  // NFT_OBJECT_COUNTER
)

// GuardConfig configures the cleartext GRE guard.
type GuardConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Table name; default DefaultGuardTable.
	Table string
}

// GREGuard drops GRE that no IPsec SA protects, in both directions, when the
// tunnel runs over IPsec: a GRE packet to the tunnel's local NBMA address that
// did not arrive through an SA (an outsider injecting overlay data or NHRP),
// and a GRE packet from it that no SA will carry (which would leave in
// clear). The equivalent nft ruleset, for local address L:
//
//	table ip dmvpnd_ipsec {
//	  counter gre_clear_in { }
//	  counter gre_clear_out { }
//	  chain input {
//	    type filter hook input priority filter; policy accept;
//	    ip protocol gre ip daddr L meta ipsec missing counter name "gre_clear_in" drop
//	  }
//	  chain output {
//	    type filter hook output priority filter; policy accept;
//	    ip protocol gre ip saddr L rt ipsec missing counter name "gre_clear_out" drop
//	  }
//	}
//
// A decapsulated packet carries the SA in its secpath ("meta ipsec"), in
// transport and in tunnel mode alike; the tunnel's own packets are routed
// through the xfrm bundle of the matching policy ("rt ipsec"), and after
// encryption leave as ESP, which the rules do not match. With an invalid
// local address (a tunnel bound to no address) the rules match every GRE
// packet of the namespace.
type GREGuard struct {
	cfg GuardConfig
	// mu guards bound: the binding set as last written (nil: unknown,
	// read it from the kernel).
	mu    sync.Mutex
	bound []BoundSource
}

// GuardCounters are the guard's drop counters.
type GuardCounters struct {
	InPackets, InBytes   uint64
	OutPackets, OutBytes uint64
	// Unbound*: tunnel-sourced GRE the binding dropped (guard_bind.go).
	UnboundPackets, UnboundBytes uint64
}

// NewGREGuard returns the guard; nothing is installed until Install.
func NewGREGuard(cfg GuardConfig) *GREGuard {
	if cfg.Table == "" {
		cfg.Table = DefaultGuardTable
	}
	return &GREGuard{cfg: cfg}
}

func (g *GREGuard) conn() (*nftables.Conn, error) { return nftConn(g.cfg.NetNS) }

func (g *GREGuard) table() *nftables.Table {
	return &nftables.Table{Name: g.cfg.Table, Family: nftables.TableFamilyIPv4}
}

func (g *GREGuard) object() string { return "table ip " + g.cfg.Table }

// Install replaces the guard table atomically (one netlink batch) for the
// local NBMA address, with the tunnel-source binding when bind is enabled;
// the counters restart from zero. The binding set keeps the elements a
// previous Install (a previous run) left, so that a restart does not cut
// the bound peers off until the controller sets them again.
func (g *GREGuard) Install(local netip.Addr, bind SourceBinding) error {
	if local.IsValid() && !local.Is4() {
		return opErr("install GRE guard", g.object(), fmt.Errorf("local address %s is not IPv4", local))
	}
	if err := bind.validate(); err != nil {
		return opErr("install GRE guard", g.object(), err)
	}
	cc, err := g.conn()
	if err != nil {
		return opErr("install GRE guard", g.object(), err)
	}
	var kept []nftables.SetElement
	if bind.Enabled() {
		_, have, _, err := g.listBound(cc)
		if err != nil {
			return opErr("install GRE guard", g.object(), err)
		}
		if kept, err = boundElements(have); err != nil {
			return opErr("install GRE guard", g.object(), err)
		}
	}
	t := g.table()
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)
	policy := nftables.ChainPolicyAccept
	for _, dir := range []struct {
		hook    *nftables.ChainHook
		name    string
		counter string
		addrOff uint32 // ip daddr (16) on input, ip saddr (12) on output
		ipsec   []expr.Any
	}{
		{nftables.ChainHookInput, "input", GuardCounterIn, 16, []expr.Any{&expr.Meta{Key: metaKeySecpath, Register: 1}}},
		{nftables.ChainHookOutput, "output", GuardCounterOut, 12, []expr.Any{&expr.Rt{Key: rtKeyXfrm, Register: 1}}},
	} {
		cc.AddObj(&nftables.CounterObj{Table: t, Name: dir.counter})
		ch := cc.AddChain(&nftables.Chain{
			Name: dir.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: dir.hook, Priority: nftables.ChainPriorityFilter, Policy: &policy,
		})
		cc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: guardExprs(local, dir.addrOff, dir.ipsec, dir.counter)})
		if bind.Enabled() && dir.name == "input" {
			set := boundSetOf(t)
			if err := cc.AddSet(set, kept); err != nil {
				return opErr("install GRE guard", g.object(), err)
			}
			cc.AddObj(&nftables.CounterObj{Table: t, Name: GuardCounterUnbound})
			for _, e := range bindExprs(local, bind, set.Name, set.ID) {
				cc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e})
			}
		}
	}
	g.mu.Lock()
	g.bound = nil
	g.mu.Unlock()
	if err := cc.Flush(); err != nil {
		return opErr("install GRE guard", g.object(), err)
	}
	return nil
}

// guardExprs is one direction's rule: GRE, the local address at addrOff
// (when valid), the IPsec key loaded by ipsec equal to 0, counter, drop.
func guardExprs(local netip.Addr, addrOff uint32, ipsec []expr.Any, counter string) []expr.Any {
	e := append(greWith(local, addrOff), ipsec...)
	e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}})
	return append(e, countDrop(counter)...)
}

// Remove deletes the guard table; a missing table is not an error.
func (g *GREGuard) Remove() error {
	return nftBatch(g.cfg.NetNS, "remove GRE guard", g.object(), func(cc *nftables.Conn) error {
		t := g.table()
		cc.AddTable(t)
		cc.DelTable(t)
		g.mu.Lock()
		g.bound = nil
		g.mu.Unlock()
		return nil
	})
}

// Counters reads the guard's drop counters.
func (g *GREGuard) Counters() (GuardCounters, error) {
	cc, err := g.conn()
	if err != nil {
		return GuardCounters{}, opErr("read GRE guard counters", g.object(), err)
	}
	objs, err := cc.GetObjects(g.table())
	if err != nil {
		return GuardCounters{}, opErr("read GRE guard counters", g.object(), err)
	}
	var c GuardCounters
	for _, o := range objs {
		co, ok := o.(*nftables.CounterObj)
		if !ok {
			continue
		}
		switch co.Name {
		case GuardCounterIn:
			c.InPackets, c.InBytes = co.Packets, co.Bytes
		case GuardCounterOut:
			c.OutPackets, c.OutBytes = co.Packets, co.Bytes
		case GuardCounterUnbound:
			c.UnboundPackets, c.UnboundBytes = co.Packets, co.Bytes
		}
	}
	return c, nil
}
