package engine

import (
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
)

// pathState is what we know about the direct path to a resolved peer.
type pathState uint8

const (
	pathUnknown    pathState = iota // not probed yet
	pathNone                        // no direct path possible (both behind NAT)
	pathValidating                  // probing; traffic stays on the hub
	pathUp                          // a direct exchange succeeded both ways
	pathDown                        // probes failed; hub path, retry later
)

// pathCtl is the per-peer probe machinery, kept beside the peer.
type pathCtl struct {
	fails   int
	backoff time.Duration
	t       *timer
	probe   *pending
}

func (e *Engine) ctl(pe *peer) *pathCtl {
	x := pe.more()
	if x.pc == nil {
		x.pc = &pathCtl{backoff: e.cfg.PathRetryMin}
		x.pc.t = newTimer(func() { e.pathTimer(pe) })
	}
	return x.pc
}

// startPath begins validating the direct path of a resolved peer. A probe
// is a Resolution Request for the peer's own address sent straight to its
// NBMA address: its reply proves both directions at once.
func (e *Engine) startPath(pe *peer) {
	if !pe.nbma.IsValid() {
		e.setPath(pe, pathNone, "no direct path: both ends behind different NATs")
		return
	}
	c := e.ctl(pe)
	c.fails = 0
	if e.awaitsPeer(pe) {
		e.setPath(pe, pathDown, "waiting for the peer behind NAT to open the direct path")
		return
	}
	e.setPath(pe, pathValidating, "probing direct path")
	e.sendProbe(pe)
}

// awaitsPeer reports whether the direct path to pe must be opened by pe
// itself: it is behind a NAT, we are not, and nothing has come straight
// from it yet. Its NAT drops what we send until pe has sent to us (with
// IPsec there is no SA before pe initiates), and on Linux an unsolicited
// GRE packet even blocks the mapping pe is about to open, for as long as
// the NAT's conntrack entry for it lives (30 s, refreshed by every retry).
// The path is probed as soon as pe's own packet arrives (directFrom).
func (e *Engine) awaitsPeer(pe *peer) bool {
	return pe.observed.IsValid() && !e.myPublic.IsValid() && !pe.heard
}

func (e *Engine) sendProbe(pe *peer) {
	c := e.ctl(pe)
	if c.probe != nil || e.pendingFull() {
		return
	}
	id := e.newID()
	p := nhrp.NewResolutionRequest(e.cfg.NBMA, e.cfg.Proto, pe.proto, id, e.cfg.holdingSeconds(), e.cfg.MTU)
	p.HopCount = e.cfg.HopCount
	e.setOwnGroup(p)
	b := e.send(p, pe.nbma)
	if b == nil {
		return
	}
	e.counters.inc(cProbesSent)
	c.probe = &pending{id: id, kind: pendProbe, target: pe.proto, to: pe.nbma, max: 1, wait: e.cfg.ProbeTimeout, peer: pe}
	e.track(c.probe, b)
}

func (e *Engine) probeOK(pe *peer) {
	if e.peers.get(pe.proto) != pe {
		return
	}
	c := e.ctl(pe)
	c.probe = nil
	c.fails = 0
	c.backoff = e.cfg.PathRetryMin
	e.setPath(pe, pathUp, "direct path confirmed")
	e.after(c.t, e.cfg.KeepaliveInterval)
}

func (e *Engine) probeFailed(pe *peer, reason string) {
	if e.peers.get(pe.proto) != pe {
		return
	}
	c := e.ctl(pe)
	c.probe = nil
	c.fails++
	e.counters.inc(cProbeFailures)
	if c.fails < e.cfg.ProbeTries {
		e.sendProbe(pe)
		return
	}
	e.setPath(pe, pathDown, "direct path failed: "+reason)
	e.after(c.t, c.backoff)
	c.backoff = backoff.Policy{Min: e.cfg.PathRetryMin, Max: e.cfg.PathRetryMax}.Next(c.backoff)
}

// pathTimer: keepalive while up, retry while down.
func (e *Engine) pathTimer(pe *peer) {
	if e.peers.get(pe.proto) != pe {
		return
	}
	c := e.ctl(pe)
	switch pe.path {
	case pathUp:
		e.sendProbe(pe)
		e.after(c.t, e.cfg.KeepaliveInterval)
	case pathDown:
		c.fails = 0
		e.setPath(pe, pathValidating, "retrying direct path")
		e.sendProbe(pe)
	}
}

// directFrom notes NHRP traffic that came straight from peer proto: if its
// direct path is not confirmed, probe it now instead of waiting.
func (e *Engine) directFrom(proto, from netip.Addr) {
	pe := e.peers.get(proto)
	if pe == nil || pe.nbma != from {
		return
	}
	pe.heard = true
	if pe.kind != KindResolved {
		return
	}
	if pe.path == pathDown {
		e.cancel(e.ctl(pe).t)
		e.pathTimer(pe)
	}
}

func (e *Engine) stopPath(pe *peer) {
	pc := pe.pathCtl()
	if pc == nil {
		return
	}
	e.cancel(pc.t)
	if pc.probe != nil {
		e.finishPending(pc.probe)
		pc.probe = nil
	}
}

// setPath changes the path state, re-points the neighbor entry and
// reports every shortcut via the peer.
func (e *Engine) setPath(pe *peer, s pathState, reason string) {
	if pe.path == s {
		return
	}
	pe.path = s
	e.settleAdopted(pe)
	e.rebind(pe)
	for _, sc := range sortedShortcuts(pe.shortcuts()) {
		e.setShortcut(sc, shortcutStateFor(s), reason)
	}
}
