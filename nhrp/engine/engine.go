package engine

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"go.uber.org/zap"
)

// Engine is the NHRP protocol engine of one tunnel interface. It is not
// safe for concurrent use: the controller calls it from one goroutine.
type Engine struct {
	cfg Config
	log *zap.Logger
	now time.Time

	timers   timerHeap
	timerSeq uint64

	counters counters
	limit    *limiter // nil: no per-source limit

	rx    nhrp.Packet // decode scratch, reused
	txbuf []byte

	nhss      []*nhs
	myPublic  netip.Addr // our post-NAT NBMA, learnt from an NHS
	peers     peerMap
	negative  map[netip.Addr]*negEntry
	pending   map[uint32]*pending
	resolving map[netip.Addr]*pending
	shortcuts map[netip.Prefix]*shortcut
	flows     map[flowKey]time.Time
	adopted   map[netip.Addr]*adoptedPath // see Adopt; nil until used
	prot      map[netip.Addr]*proof       // see SetProtections
	owned     ownerCounts                 // registrations held per peer
	perSource ownerCounts                 // other cache entries per source

	// deferred are the entries whose neighbor write a Binder queued, held
	// the replies waiting for them (see CommitBindings).
	deferred []*peer
	held     []heldReply

	waiting   saWaits   // packets from an NBMA no SA proves yet (Config.IPsec)
	crossings crossings // answers retransmissions may cross (crossing.go)
}

// New returns an engine. It sends nothing until Start.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:       cfg,
		log:       cfg.Logger,
		counters:  counters{},
		negative:  map[netip.Addr]*negEntry{},
		pending:   map[uint32]*pending{},
		resolving: map[netip.Addr]*pending{},
		shortcuts: map[netip.Prefix]*shortcut{},
		flows:     map[flowKey]time.Time{},
	}
	e.now = cfg.Clock.Now()
	if cfg.SourceRate > 0 {
		e.limit = newLimiter(cfg.SourceRate, cfg.SourceBurst, cfg.MaxSources, e.now)
	}
	e.initNHSs()
	return e, nil
}

// Start begins registering with the configured NHSs.
func (e *Engine) Start() {
	e.now = e.cfg.Clock.Now()
	e.recomputeWanted()
}

// newID returns an unpredictable request id that no outstanding request
// uses.
func (e *Engine) newID() uint32 {
	for {
		id := e.cfg.RequestIDs()
		if id == 0 || e.pending[id] != nil || slices.ContainsFunc(e.nhss, func(n *nhs) bool { return n.pkt != nil && n.reqID == id }) {
			continue
		}
		return id
	}
}

// HandlePacket processes one NHRP packet received from the NBMA address
// from (the GRE source; with IPsec the inner source after decryption).
// Malformed, unauthenticated, unprotected or rate-limited packets are
// counted and dropped; HandlePacket never panics on any input. With
// Config.IPsec a packet from an NBMA no SA proves yet is held (a copy:
// b may be reused) for a short bounded time and handled when
// SetProtections proves the NBMA, else dropped as untrusted (see the
// package doc, "Trust").
func (e *Engine) HandlePacket(from netip.Addr, b []byte) {
	e.HandlePacketReceived(from, b, time.Time{})
}

// HandlePacketReceived is HandlePacket for a packet the kernel received at
// the time given (zero: unknown). A hub that falls behind its socket then
// drops a retransmitted Registration Request that was already queued when
// the answer to its request went out (crossing.go).
func (e *Engine) HandlePacketReceived(from netip.Addr, b []byte, received time.Time) {
	e.now = e.cfg.Clock.Now()
	e.counters.inc(cRxPackets)
	if from == e.cfg.NBMA {
		e.drop(DropSelf)
		return
	}
	pr, why := e.proven(from)
	if e.cfg.IPsec && pr == nil {
		if why != DropUntrusted || !e.awaitSA(from, b) {
			e.drop(why)
		}
		return
	}
	e.receive(from, b, pr, received)
}

// receive handles the packet b from the NBMA from, whose SA proof (with
// Config.IPsec) is pr.
func (e *Engine) receive(from netip.Addr, b []byte, pr *proof, received time.Time) {
	if !received.IsZero() {
		e.crossings.forgetBefore(received)
	}
	// The post-NAT address comes from the SA, never from an NHRP claim.
	outer, owner, nbma := from, ownerKey{addr: from}, from
	if pr != nil && pr.outer.IsValid() {
		outer = pr.outer
	}
	if e.cfg.IPsec {
		owner = ownerKey{identity: pr.identity, addr: pr.ownerAddr(from)}
		if pr.inner.IsValid() {
			nbma = pr.inner
		}
	}
	var bk *bucket
	if e.limit != nil {
		if bk = e.limit.get(from, e.now); !e.limit.take(bk, 1, e.now) {
			e.drop(DropRateLimited)
			return
		}
	}
	p := &e.rx
	p.Type, p.SrcProto = 0, netip.Addr{} // no stale values in a partial decode
	if err := p.UnmarshalOptions(b, decodeOptions); err != nil {
		e.dropMalformed(err, p, b, from)
		return
	}
	// The rate counts CIEs: one packet carrying 256 costs 256 tokens.
	if n := len(p.CIEs); bk != nil && n > 1 && !e.limit.take(bk, float64(n-1), e.now) {
		e.drop(DropRateLimited)
		return
	}
	if !e.authOK(p) {
		e.drop(DropAuth)
		e.log.Debug("authentication failed", zap.Stringer("from", from), zap.Stringer("type", p.Type))
		e.sendError(nhrp.ErrorAuthenticationFailure, 0, p, b, from)
		return
	}
	in := &inbound{p: p, raw: b, from: from, outer: outer, nbma: nbma, owner: owner, received: received}
	switch p.Type {
	case nhrp.TypeRegistrationRequest:
		e.handleRegistration(in)
	case nhrp.TypeRegistrationReply:
		e.handleRegistrationReply(in)
	case nhrp.TypeResolutionRequest:
		e.handleResolutionRequest(in)
	case nhrp.TypeResolutionReply:
		e.handleResolutionReply(in)
	case nhrp.TypePurgeRequest:
		e.handlePurgeRequest(in)
	case nhrp.TypePurgeReply:
		e.handlePurgeReply(in)
	case nhrp.TypeErrorIndication:
		e.handleErrorIndication(in)
	case nhrp.TypeTrafficIndication:
		e.handleTrafficIndication(in)
	}
}

// decodeOptions: FRR nhrpd (up to 8.x) sends Error Indications with hop
// count 0; they are never forwarded by hop count, so they are taken.
var decodeOptions = nhrp.DecodeOptions{ZeroHopErrorIndication: true}

// inbound is a received packet with its arrival facts.
type inbound struct {
	p     *nhrp.Packet
	raw   []byte
	from  netip.Addr // GRE source: where answers go
	outer netip.Addr // post-NAT source: from, or the outer address of from's SA
	nbma  netip.Addr // the NBMA the sender may claim: from, or its SA's inner address when from is an alias
	owner ownerKey   // who sent it
	// received is when the kernel received it; zero when unknown.
	received time.Time
}

// ownerKey names the peer that sent a packet and owns what it registers:
// with IPsec its IKE identity and, unless a certificate binding proves the
// identity (Protection.Bound), the address its SA comes from (the post-NAT
// address behind NAT, else the SA-proven NBMA): with a group PSK two
// spokes may assert one identity (behind different NATs both use their
// private NBMA; a key holder may assert another spoke's), and neither may
// then change what the other registered while the other's SA is up;
// without IPsec its source NBMA address (the GRE source, post-NAT). addr
// is that address without IPsec, the optional outer address with it: the
// two forms never meet in one engine (Config.IPsec is fixed), so one field
// holds either, which keeps the key (held by every registration and the
// per-owner counts) small.
type ownerKey struct {
	identity string
	addr     netip.Addr
}

func (o ownerKey) String() string {
	switch {
	case o.identity != "" && o.addr.IsValid():
		return "identity " + o.identity + " at " + o.addr.String()
	case o.identity != "":
		return "identity " + o.identity
	}
	return "nbma " + o.addr.String()
}

// dropMalformed counts a packet that did not decode and, when the decoder
// got far enough to know its type and source (and the RFC allows it: not
// for a bad checksum, never for an Error Indication), answers with the
// Error Indication code the decoder found.
func (e *Engine) dropMalformed(err error, p *nhrp.Packet, b []byte, from netip.Addr) {
	var pe *nhrp.ParseError
	// A corrupted packet's addresses cannot be trusted: no answer then.
	if errors.As(err, &pe) && !errors.Is(pe.Err, nhrp.ErrChecksum) && p.Type.Valid() && p.SrcProto.IsValid() {
		e.sendError(pe.Code, pe.Offset, p, b, from)
	}
	switch {
	case errors.As(err, &pe) && errors.Is(pe.Err, nhrp.ErrChecksum):
		e.drop(DropChecksum)
	case errors.As(err, &pe) && errors.Is(pe.Err, nhrp.ErrHopCount):
		e.drop(DropHopCount)
	default:
		e.drop(DropMalformed)
	}
	e.log.Debug("dropped malformed packet", zap.Stringer("from", from), zap.Error(err))
}

// send marshals p, adding authentication when configured, and writes it to
// nbma. It returns the bytes sent (valid until the next send).
func (e *Engine) send(p *nhrp.Packet, nbma netip.Addr) []byte {
	if len(e.cfg.AuthPassword) > 0 {
		p.SetCleartextAuth(e.cfg.AuthPassword)
	}
	b, err := p.AppendMarshal(e.txbuf[:0])
	if err != nil {
		e.counters.inc(cTxErrors)
		e.log.Warn("cannot encode packet", zap.Stringer("type", p.Type), zap.Error(err))
		return nil
	}
	e.txbuf = b
	e.write(b, nbma)
	return b
}

func (e *Engine) write(b []byte, nbma netip.Addr) {
	if e.cfg.IPsec {
		if pr, why := e.proven(nbma); pr == nil {
			if why == DropUntrusted {
				why = DropSendNoSA
			}
			e.drop(why)
			return
		}
	}
	if err := e.cfg.Conn.WriteTo(b, nbma); err != nil {
		e.counters.inc(cTxErrors)
		e.log.Debug("send failed", zap.Stringer("to", nbma), zap.Error(err))
		return
	}
	e.counters.inc(cTxPackets)
}

// sendError answers the offending packet p (raw bytes b) with an Error
// Indication, never in answer to another Error Indication.
func (e *Engine) sendError(code nhrp.ErrorCode, off int, p *nhrp.Packet, b []byte, to netip.Addr) {
	if p.Type == nhrp.TypeErrorIndication || !p.SrcProto.IsValid() {
		return
	}
	if len(b) > 512 {
		b = b[:512]
	}
	ei := nhrp.NewErrorIndication(e.cfg.NBMA, e.cfg.Proto, p.SrcProto, code, uint16(off), b)
	ei.HopCount = e.cfg.HopCount
	if pe := e.peers.get(p.SrcProto); pe != nil && pe.kind == KindRegistered {
		to = pe.nbma // straight to our client, not back along a loop
	}
	e.counters.inc(cErrorsSent)
	e.send(ei, to)
}
