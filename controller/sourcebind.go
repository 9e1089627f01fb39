package controller

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// sourceBinding is the guard's tunnel-source binding for this node: the
// tunnel prefix and GRE key when ipsec.tunnel_source_binding is in effect
// (docs/security.md, "Tunnel-source binding"), else the zero value (off).
func (c *Controller) sourceBinding() kernel.SourceBinding {
	cfg := c.config()
	if c.deps.IPsec == nil || !cfg.BindsTunnelSources() {
		return kernel.SourceBinding{}
	}
	return kernel.SourceBinding{Prefix: cfg.Tunnel.Address.Masked(), Key: cfg.Tunnel.Key}
}

// desiredBoundSources pairs every tunnel address this node sends to
// directly with the NBMA it sends to, which is the address its GRE comes
// from once the SA has decrypted it (a NATed peer's claimed address in
// tunnel mode): the engine's bindings (registrations, NHSs, resolved
// peers), the neighbor entries adopted from a previous run while they are
// held, and NHSs configured with a tunnel address. Loop only.
func (c *Controller) desiredBoundSources() []kernel.BoundSource {
	var out []kernel.BoundSource
	add := func(nbma, tunnel netip.Addr) {
		if nbma.Is4() && tunnel.Is4() {
			out = append(out, kernel.BoundSource{NBMA: nbma, Tunnel: tunnel})
		}
	}
	for e := range c.eng.Peers() { // no copy of the cache: this runs at every resync
		add(e.NBMA, e.Proto)
	}
	for tunnel, nbma := range c.adopt.permanent {
		add(nbma, tunnel)
	}
	for tunnel, nbma := range c.adopt.dynamic {
		add(nbma, tunnel)
	}
	for _, n := range c.config().NHRP.NHS {
		add(n.NBMA, n.Protocol.Addr)
	}
	return out
}

// reconcileBinding pushes the bound sources when they may have changed
// (dirty.bind: a peer came or went, an adopted entry was dropped, the
// periodic resync). The guard writes only the difference. A failure keeps
// it dirty for the loop's backoff retry.
func (c *Controller) reconcileBinding() {
	if !c.dirty.bind {
		return
	}
	if c.deps.Guard == nil || !c.sourceBinding().Enabled() {
		c.dirty.bind = false
		return
	}
	if err := c.deps.Guard.SetBoundSources(c.desiredBoundSources()); err != nil {
		c.stats.inc("reconcile_errors_guard")
		c.countReconcileError("kernel")
		c.log.Warn("binding tunnel sources to their NBMA", zap.Error(err))
		return
	}
	c.dirty.bind = false
}
