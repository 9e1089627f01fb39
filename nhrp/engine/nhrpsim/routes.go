package nhrpsim

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// Routes is a static routing table with longest-prefix match.
type Routes struct{ list []engine.Route }

// Add adds a route; nextHop is the tunnel address of the next hop for a
// route via the tunnel.
func (r *Routes) Add(prefix string, viaTunnel bool, nextHop string) {
	rt := engine.Route{Prefix: netip.MustParsePrefix(prefix), ViaTunnel: viaTunnel}
	if nextHop != "" {
		rt.NextHop = netip.MustParseAddr(nextHop)
	}
	r.list = append(r.list, rt)
}

// Lookup implements engine.Router.
func (r *Routes) Lookup(dst netip.Addr) (engine.Route, bool) {
	best, ok := engine.Route{}, false
	for _, rt := range r.list {
		if rt.Prefix.Contains(dst) && (!ok || rt.Prefix.Bits() > best.Prefix.Bits()) {
			best, ok = rt, true
		}
	}
	return best, ok
}

// Neigh is a fake neighbor table implementing engine.Binder.
type Neigh struct {
	entries map[netip.Addr]engine.Binding
	// Limit, when positive, refuses bindings beyond that many entries.
	Limit int
}

// ErrTableFull is returned by Bind beyond Limit.
var ErrTableFull = errors.New("nhrpsim: neighbor table full")

// Bind implements engine.Binder.
func (n *Neigh) Bind(b engine.Binding) error {
	if n.entries == nil {
		n.entries = map[netip.Addr]engine.Binding{}
	}
	if _, ok := n.entries[b.Proto]; !ok && n.Limit > 0 && len(n.entries) >= n.Limit {
		return ErrTableFull
	}
	n.entries[b.Proto] = b
	return nil
}

// Unbind implements engine.Binder.
func (n *Neigh) Unbind(b engine.Binding) { delete(n.entries, b.Proto) }

// Lookup returns the GRE destination programmed for proto.
func (n *Neigh) Lookup(proto netip.Addr) (netip.Addr, bool) {
	b, ok := n.entries[proto]
	return b.NBMA, ok
}

// Len returns the number of entries.
func (n *Neigh) Len() int { return len(n.entries) }

// String renders the table like "ip neigh", sorted.
func (n *Neigh) String() string {
	var b strings.Builder
	for _, k := range slices.SortedFunc(maps.Keys(n.entries), netip.Addr.Compare) {
		fmt.Fprintf(&b, "%s lladdr %s\n", k, n.entries[k].NBMA)
	}
	return b.String()
}
