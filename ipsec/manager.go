package ipsec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/strongswan/govici/vici"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
)

// Manager keeps charon's connections and SAs in line with the desired set
// of peers. All interaction with charon happens on the goroutine running
// Run; SetPeers and State may be called from anywhere.
type Manager struct {
	cfg    Config
	log    *zap.Logger
	creds  *credentials
	events chan Event
	// changed has a value pending after a snapshot was published (Changed).
	changed chan struct{}
	// method and local are cfg.Auth.Method and cfg.LocalNBMA, which never
	// change, for SetCredentials (cfg belongs to the Run goroutine).
	method AuthMethod
	local  netip.Addr
	kick   chan struct{}
	// refresh carries Refresh requests to the Run goroutine.
	refresh chan chan error

	mu      sync.Mutex
	desired map[string]Peer
	// update holds credentials and proposals from SetCredentials until
	// the Run goroutine takes them.
	update     *credUpdate
	snap       State
	dropped    uint64
	malformed  uint64
	terminated uint64
	// Repairs by verify.go (mu).
	repairedConns, repairedCreds uint64
	refused                      uint64 // load-conn requests charon refused

	// Owned by the Run goroutine.
	link   *link
	daemon string
	algs   algorithms
	props  proposals
	peers  map[string]*peerState
	sas    map[string]SAInfo // by IKE_SA unique id, only on dmvpnd's connections
	loaded map[string]string // connection name -> rendered request
	// loadedPrint is the fingerprint of each loaded connection, to
	// compare with charon's list-conns (verify.go).
	loadedPrint map[string]string
	// keyID is the id load-key returned for the X.509 private key.
	keyID  string
	killed map[string]bool // IKE_SA unique ids we asked charon to terminate
	// adopted are the dmvpn- connections an earlier run left in charon
	// and nobody wants yet, with the time they are unloaded unless the
	// desired set names them first (Config.AdoptGrace).
	adopted    map[string]time.Time
	reconnects int
	nextResync time.Time
	nextVerify time.Time
	// natLocal is set once charon reports this node behind a NAT;
	// natSwitch asks reconcile to move existing SAs to tunnel mode.
	natLocal, natSwitch bool
}

// peerState is the Manager's bookkeeping for one wanted peer.
type peerState struct {
	peer        Peer
	conn        string
	wantSince   time.Time
	initiating  bool
	lastAttempt time.Time
	attempts    int
	nextAttempt time.Time
	reason      string
	status      Status
	since       time.Time
	emitted     Event
	// recover is set when charon was lost while the peer's SA was up.
	// The peer's charon still holds that SA, and while ESP flows through
	// the kernel's leftover SAs its DPD stays quiet, so it has no reason
	// to negotiate again: this end initiates once after reconnecting,
	// even towards a peer it normally only responds to.
	recover bool
	// refused is the rendered load-conn request charon last refused
	// ("" once a request was accepted); loadFails counts the refusals in
	// a row and loadRetry is when the refused request may be sent again.
	refused   string
	loadFails int
	loadRetry time.Time
}

// New validates cfg and reads the credential files it names.
func New(cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	creds, err := readCredentials(cfg.Auth)
	if err != nil {
		return nil, err
	}
	return &Manager{
		cfg:         cfg,
		log:         cfg.Logger,
		creds:       creds,
		method:      cfg.Auth.Method,
		local:       cfg.LocalNBMA,
		events:      make(chan Event, 256),
		changed:     make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		refresh:     make(chan chan error),
		desired:     map[string]Peer{},
		peers:       map[string]*peerState{},
		sas:         map[string]SAInfo{},
		loaded:      map[string]string{},
		loadedPrint: map[string]string{},
		killed:      map[string]bool{},
		adopted:     map[string]time.Time{},
	}, nil
}

// Events delivers peer state changes. The channel is buffered; when the
// reader falls behind, events are dropped and counted (State is the level
// truth).
func (m *Manager) Events() <-chan Event { return m.events }

// Changed has a value whenever a new State was published since it was last
// read (one pending value stands for any number of snapshots). Unlike
// Events it covers SAs that belong to no peer, such as those spokes start
// towards a hub (a hub's responder SAs), and it loses nothing: a reader
// that reads State after each value sees every change.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// SetPeers replaces the set of peers to protect. It may be called any
// number of times with the same set. An invalid set is rejected whole.
func (m *Manager) SetPeers(peers []Peer) error {
	want := make(map[string]Peer, len(peers))
	for _, p := range peers {
		if err := p.validate(); err != nil {
			return err
		}
		if p.RemoteNBMA == m.cfg.LocalNBMA {
			return fmt.Errorf("%w: peer %q is this node", ErrInvalidConfig, p.name())
		}
		if _, dup := want[p.name()]; dup {
			return fmt.Errorf("%w: duplicate peer name %q", ErrInvalidConfig, p.name())
		}
		want[p.name()] = p
	}
	m.mu.Lock()
	m.desired = want
	m.mu.Unlock()
	m.wake()
	return nil
}

// wake makes Run reconcile soon; a wake-up already pending covers this one.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// State returns a snapshot for dmvpnctl and the controller.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Peers = slices.Clone(s.Peers)
	s.Unattributed = slices.Clone(s.Unattributed)
	s.DroppedEvents = m.dropped
	s.MalformedEvents = m.malformed
	s.Terminated = m.terminated
	s.RepairedConns = m.repairedConns
	s.RepairedCreds = m.repairedCreds
	s.LoadsRefused = m.refused
	return s
}

// ErrNotConnected is Refresh's answer while charon is not connected.
var ErrNotConnected = errors.New("ipsec: not connected to charon")

// Refresh lists charon's SAs now, so that State carries current traffic
// counters and lifetimes (they move between the periodic resyncs), and
// returns once State reflects the listing or ctx ends. It does not wait
// for a reconnection: while charon is away it fails at once.
func (m *Manager) Refresh(ctx context.Context) error {
	if !m.State().Connected {
		return ErrNotConnected
	}
	done := make(chan error, 1)
	select {
	case m.refresh <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Generation is the Generation of the current snapshot, without copying
// it: a caller that derives data from State can skip the work while the
// generation is unchanged.
func (m *Manager) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.Generation
}

// Run connects to charon and reconciles until ctx is done. Connection
// losses are retried with capped exponential backoff; after each
// (re)connection everything is loaded again.
func (m *Manager) Run(ctx context.Context) error {
	retry := backoff.New(m.cfg.ReconnectMin, m.cfg.ReconnectMax)
	for {
		err := m.connect(ctx)
		if err == nil {
			retry.Reset()
			err = m.serve(ctx)
			m.link.close()
			m.link = nil
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := retry.Next()
		m.log.Warn("charon session failed, reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		m.lost(ReasonCharonLost)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (m *Manager) cmdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.cfg.CommandTimeout)
}

func (m *Manager) call(ctx context.Context, cmd string, in *vici.Message) (*vici.Message, error) {
	cctx, cancel := m.cmdCtx(ctx)
	defer cancel()
	return m.link.call(cctx, cmd, in)
}

// connect dials charon and loads credentials and the responder connection.
func (m *Manager) connect(ctx context.Context) error {
	l, err := dial(&m.cfg)
	if err != nil {
		return err
	}
	m.link = l
	fail := func(err error) error {
		m.link.close()
		m.link = nil
		return err
	}
	v, err := m.call(ctx, cmdVersion, nil)
	if err != nil {
		return fail(err)
	}
	m.daemon = str(v, "daemon") + " " + str(v, "version")
	algs, err := m.algorithms(ctx)
	if err != nil {
		return fail(err)
	}
	m.algs = algs
	m.takeUpdate()
	m.props = m.chooseProposals(algs)
	if err := m.loadCreds(ctx); err != nil {
		return fail(err)
	}
	m.loaded = map[string]string{}
	if err := m.loadConn(ctx, responderConn, m.renderResponderConn()); err != nil {
		return fail(err)
	}
	if err := m.pruneConns(ctx); err != nil {
		return fail(err)
	}
	if err := m.resync(ctx); err != nil {
		return fail(err)
	}
	// What was just loaded is checked at once, so that a charon that
	// answers but does not keep it (or a reload racing this one) is
	// seen on every reconnection, not one period later.
	if err := m.verify(ctx); err != nil {
		return fail(err)
	}
	m.reconnects++
	m.log.Info("connected to charon", zap.String("daemon", m.daemon),
		zap.Strings("ike_proposals", m.props.ike), zap.Strings("esp_proposals", m.props.esp))
	return nil
}

func (m *Manager) algorithms(ctx context.Context) (algorithms, error) {
	resp, err := m.call(ctx, cmdGetAlgorithms, nil)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return algorithms{}, nil
		}
		return nil, err
	}
	a := algorithms{}
	for _, sec := range resp.Keys() {
		s := section(resp, sec)
		if s == nil {
			continue
		}
		a[sec] = map[string]bool{}
		for _, k := range s.Keys() {
			a[sec][k] = true
		}
	}
	return a, nil
}

func (m *Manager) chooseProposals(a algorithms) proposals {
	p := proposals{ike: m.cfg.IKEProposals, esp: m.cfg.ESPProposals}
	if len(p.ike) == 0 {
		p.ike = a.filter(DefaultIKEProposals, false)
	}
	if len(p.esp) == 0 {
		p.esp = a.filter(DefaultESPProposals, true)
	}
	return p
}

// loadCreds loads the PSK or the certificates and key. The secret goes
// only into the request; errors and logs never contain it.
func (m *Manager) loadCreds(ctx context.Context) error {
	switch m.cfg.Auth.Method {
	case AuthPSK:
		if _, err := m.call(ctx, cmdLoadShared, m.renderLoadShared()); err != nil {
			return fmt.Errorf("ipsec: loading pre-shared key: %w", scrub(err, m.cfg.Auth.PSK.Reveal()))
		}
	case AuthX509:
		if _, err := m.call(ctx, cmdLoadCert, renderLoadCert(m.creds.ca, true)); err != nil {
			return fmt.Errorf("ipsec: loading CA certificate: %w", err)
		}
		if _, err := m.call(ctx, cmdLoadCert, renderLoadCert(m.creds.cert, false)); err != nil {
			return fmt.Errorf("ipsec: loading certificate: %w", err)
		}
		resp, err := m.call(ctx, cmdLoadKey, m.renderLoadKey())
		if err != nil {
			return fmt.Errorf("ipsec: loading private key: %w", scrub(err, string(m.creds.key)))
		}
		m.keyID = str(resp, "id") // empty before charon 5.5.3: then not verified
	}
	return nil
}

func (m *Manager) loadConn(ctx context.Context, name string, msg *vici.Message) error {
	text := msg.String()
	if m.loaded[name] == text {
		return nil
	}
	if _, err := m.call(ctx, cmdLoadConn, msg); err != nil {
		return fmt.Errorf("ipsec: loading connection %s: %w", name, err)
	}
	m.loaded[name] = text
	m.loadedPrint[name] = requestFingerprint(section(msg, name))
	m.log.Debug("loaded connection", zap.String("conn", name))
	return nil
}

// pruneConns unloads connections dmvpnd loaded earlier (a previous run)
// that are no longer wanted. Connections of others are left alone. On the
// first connection of a Run, with Config.AdoptGrace, they are adopted
// instead: kept with their SAs until the desired set names them or the
// grace ends (settleAdopted).
func (m *Manager) pruneConns(ctx context.Context) error {
	resp, err := m.call(ctx, cmdGetConns, nil)
	if err != nil {
		return err
	}
	want := m.wantedConns()
	now := time.Now()
	for _, c := range list(resp, "conns") {
		if !ownConn(c) || want[c] || c == responderConn {
			continue
		}
		if _, ok := m.adopted[c]; ok {
			continue
		}
		if m.reconnects == 0 && m.cfg.AdoptGrace > 0 {
			m.adopted[c] = now.Add(m.cfg.AdoptGrace)
			m.log.Info("keeping a connection an earlier run left, with its SAs, until it is wanted again or the grace ends",
				zap.String("conn", c), zap.Duration("grace", m.cfg.AdoptGrace))
			continue
		}
		m.unload(ctx, c)
	}
	return nil
}

// settleAdopted ends the adoption of the connections the desired set now
// names (they are the peers' own again, SAs included) and unloads those
// whose grace ended unwanted.
func (m *Manager) settleAdopted(ctx context.Context, desired map[string]Peer, now time.Time) error {
	if len(m.adopted) == 0 {
		return nil
	}
	wanted := connNames(desired)
	for _, conn := range slices.Sorted(maps.Keys(m.adopted)) {
		switch {
		case wanted[conn]:
			delete(m.adopted, conn)
			m.log.Info("an adopted connection is wanted again: its SAs are kept", zap.String("conn", conn))
		case !now.Before(m.adopted[conn]):
			if err := m.unload(ctx, conn); err != nil {
				return err
			}
			m.dropSAs(conn)
			delete(m.adopted, conn)
			m.log.Info("unloaded an adopted connection not wanted within the grace", zap.String("conn", conn))
		}
	}
	return nil
}

func (m *Manager) wantedConns() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return connNames(m.desired)
}

// connNames is the set of the connections that protect peers.
func connNames(peers map[string]Peer) map[string]bool {
	out := make(map[string]bool, len(peers))
	for _, p := range peers {
		out[connName(p)] = true
	}
	return out
}

// unload terminates the SAs of conn and unloads it. Missing SAs or a
// missing connection are not errors.
func (m *Manager) unload(ctx context.Context, conn string) error {
	if _, err := m.call(ctx, cmdTerminate, renderTerminateConn(conn)); err != nil && errors.Is(err, ErrConnection) {
		return err
	}
	if _, err := m.call(ctx, cmdUnloadConn, renderUnload(conn)); err != nil && errors.Is(err, ErrConnection) {
		return err
	}
	delete(m.loaded, conn)
	delete(m.loadedPrint, conn)
	m.log.Debug("unloaded connection", zap.String("conn", conn))
	return nil
}

// resync replaces the SA table with charon's list-sas.
func (m *Manager) resync(ctx context.Context) error {
	cctx, cancel := m.cmdCtx(ctx)
	defer cancel()
	msgs, err := m.link.listSAs(cctx)
	if err != nil {
		return err
	}
	sas := map[string]SAInfo{}
	now := time.Now()
	for _, msg := range msgs {
		for _, conn := range msg.Keys() {
			b := section(msg, conn)
			if b == nil || !ownConn(conn) {
				continue
			}
			sa, err := parseSA(conn, b, now)
			if err != nil {
				m.log.Warn("malformed list-sa entry", zap.Error(err))
				continue
			}
			sas[sa.UniqueID] = sa
		}
	}
	m.sas = sas
	for id := range m.killed {
		if _, ok := sas[id]; !ok {
			delete(m.killed, id)
		}
	}
	m.nextResync = time.Now().Add(m.cfg.ResyncInterval)
	return nil
}

func ownConn(name string) bool {
	return len(name) > len(connPrefix) && name[:len(connPrefix)] == connPrefix
}

// lost forgets everything charon held: after a reconnect all is loaded again.
func (m *Manager) lost(reason string) {
	m.sas = map[string]SAInfo{}
	m.loaded = map[string]string{}
	m.killed = map[string]bool{}
	now := time.Now()
	for _, ps := range m.peers {
		if ps.status == StatusUp {
			ps.recover = true // sticky across failed reconnection attempts
		}
		ps.initiating = false
		ps.attempts = 0
		ps.nextAttempt = now
		ps.loadRetry = now
		ps.reason = reason
	}
	m.publish(false)
}

// serve handles events, SetPeers, SetCredentials and timers until the
// connection fails.
func (m *Manager) serve(ctx context.Context) error {
	for {
		if err := m.applyUpdate(ctx); err != nil {
			return err
		}
		if err := m.reconcile(ctx); err != nil {
			if errors.Is(err, ErrConnection) {
				return err
			}
			m.log.Warn("reconcile", zap.Error(err))
		}
		m.publish(true)
		t := time.NewTimer(m.nextWake())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case ev, ok := <-m.link.events:
			t.Stop()
			if !ok {
				return fmt.Errorf("%w: event stream closed", ErrConnection)
			}
			m.handleEvent(ev)
			if err := m.drainEvents(); err != nil {
				return err
			}
		case <-m.kick:
			t.Stop()
		case done := <-m.refresh:
			t.Stop()
			err := m.resync(ctx)
			if err == nil {
				m.publish(true)
			}
			done <- err
			if errors.Is(err, ErrConnection) {
				return err
			}
		case <-t.C:
		}
		if !time.Now().Before(m.nextResync) {
			if err := m.resync(ctx); err != nil {
				if errors.Is(err, ErrConnection) {
					return err
				}
				m.log.Warn("resync", zap.Error(err))
				m.nextResync = time.Now().Add(m.cfg.RetryMin)
			}
		}
		if !time.Now().Before(m.nextVerify) {
			// Repairs take effect in the reconcile at the top of the loop.
			if err := m.verify(ctx); err != nil {
				if errors.Is(err, ErrConnection) {
					return err
				}
				m.log.Warn("verifying charon's configuration", zap.Error(err))
			}
		}
	}
}

// drainEvents handles the events already queued, so that a burst costs
// one reconcile pass.
func (m *Manager) drainEvents() error {
	for {
		select {
		case ev, ok := <-m.link.events:
			if !ok {
				return fmt.Errorf("%w: event stream closed", ErrConnection)
			}
			m.handleEvent(ev)
		default:
			return nil
		}
	}
}

// nextWake is the time until the next timer-driven action.
func (m *Manager) nextWake() time.Duration {
	now := time.Now()
	next := m.nextResync
	if m.nextVerify.Before(next) {
		next = m.nextVerify
	}
	consider := func(t time.Time) {
		if !t.IsZero() && t.After(now) && t.Before(next) {
			next = t
		}
	}
	for _, end := range m.adopted {
		consider(end)
	}
	for _, ps := range m.peers {
		if ps.initiating {
			consider(ps.lastAttempt.Add(m.cfg.ConnectTimeout))
		}
		consider(ps.nextAttempt)
		if ps.refused != "" {
			consider(ps.loadRetry)
		}
		if ps.peer.Initiate == InitiateTieBreak {
			consider(ps.wantSince.Add(m.cfg.FallbackDelay))
		}
	}
	d := next.Sub(now)
	if d <= 0 {
		d = time.Millisecond
	}
	return d
}

// retryAfter is the wait before a peer's next load or initiate after
// attempts failures.
func (m *Manager) retryAfter(attempts int) time.Duration {
	return backoff.Policy{Min: m.cfg.RetryMin, Max: m.cfg.RetryMax}.Nth(attempts)
}

// reconcile brings charon's connections in line with the desired peers,
// initiates where due and enforces the duplicate and binding policies.
func (m *Manager) reconcile(ctx context.Context) error {
	m.mu.Lock()
	desired := maps.Clone(m.desired)
	m.mu.Unlock()
	now := time.Now()

	if err := m.loadConn(ctx, responderConn, m.renderResponderConn()); err != nil {
		return err
	}
	if err := m.settleAdopted(ctx, desired, now); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(m.peers)) {
		ps := m.peers[name]
		p, ok := desired[name]
		if ok && p.RemoteNBMA == ps.peer.RemoteNBMA && p.claimed() == ps.peer.claimed() {
			continue
		}
		// Removed, or moved to another address: tear the old one down.
		if err := m.unload(ctx, ps.conn); err != nil {
			return err
		}
		m.dropSAs(ps.conn)
		delete(m.peers, name)
		m.emit(ps, Event{Peer: name, Status: StatusDown, Reason: ReasonPeerRemoved, Time: now})
	}
	if m.natSwitch {
		// Charon found a NAT in front of us: per-peer connections switch
		// to tunnel mode; their transport-mode SAs cannot work through it.
		m.natSwitch = false
		for _, name := range slices.Sorted(maps.Keys(m.peers)) {
			ps := m.peers[name]
			if ps.peer.natted() || m.loaded[ps.conn] == "" {
				continue
			}
			if ok, err := m.loadPeer(ctx, ps, now); err != nil {
				return err
			} else if !ok {
				continue
			}
			if _, err := m.call(ctx, cmdTerminate, renderTerminateConn(ps.conn)); errors.Is(err, ErrConnection) {
				return err
			}
			m.dropSAs(ps.conn)
			ps.initiating = false
			ps.attempts = 0
			ps.nextAttempt = now
		}
	}
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		p := desired[name]
		ps := m.peers[name]
		if ps == nil {
			ps = &peerState{peer: p, conn: connName(p), wantSince: now, nextAttempt: now, since: now}
			m.peers[name] = ps
		}
		if p.Initiate != ps.peer.Initiate {
			ps.wantSince = now // a new tie-break starts now
		}
		ps.peer = p
		if ok, err := m.loadPeer(ctx, ps, now); err != nil {
			return err
		} else if !ok {
			continue
		}
		if err := m.maybeInitiate(ctx, ps, now); err != nil {
			return err
		}
	}
	return m.enforce(ctx)
}

// loadPeer loads the connection of one peer, unless charon refused this
// very request and its retry is not due yet. A refusal concerns that peer
// alone: it is counted (State.LoadsRefused), logged when an episode
// starts, and retried with the per-peer backoff; the caller goes on with
// the other peers. A peer whose request changed is tried at once (the
// backoff keeps growing until charon accepts one). loadPeer reports
// whether the connection is loaded; its error is a lost link to charon.
func (m *Manager) loadPeer(ctx context.Context, ps *peerState, now time.Time) (bool, error) {
	msg := m.renderPeerConn(ps.peer)
	text := msg.String()
	if m.loaded[ps.conn] == text {
		return true, nil
	}
	if ps.refused == text && now.Before(ps.loadRetry) {
		return false, nil
	}
	err := m.loadConn(ctx, ps.conn, msg)
	if err == nil {
		if ps.loadFails > 0 {
			m.log.Info("charon accepted the peer's connection", zap.String("peer", ps.peer.name()),
				zap.Int("refusals", ps.loadFails))
		}
		ps.refused, ps.loadFails, ps.loadRetry = "", 0, time.Time{}
		return true, nil
	}
	if errors.Is(err, ErrConnection) {
		return false, err
	}
	ps.refused = text
	ps.loadFails++
	ps.loadRetry = now.Add(m.retryAfter(ps.loadFails))
	ps.reason = err.Error()
	m.mu.Lock()
	m.refused++
	m.mu.Unlock()
	if ps.loadFails == 1 {
		m.log.Warn("charon refused the peer's connection; other peers are unaffected, retrying with backoff",
			zap.String("peer", ps.peer.name()), zap.Error(err), zap.Duration("retry_in", ps.loadRetry.Sub(now)))
	} else {
		m.log.Debug("charon refused the peer's connection again", zap.String("peer", ps.peer.name()),
			zap.Int("refusals", ps.loadFails), zap.Duration("retry_in", ps.loadRetry.Sub(now)))
	}
	return false, nil
}

func (m *Manager) dropSAs(conn string) {
	for id, sa := range m.sas {
		if sa.Conn == conn {
			delete(m.sas, id)
		}
	}
}

// lowerThan reports whether this node wins the initiation tie-break with p.
func (m *Manager) lowerThan(p Peer) bool { return m.cfg.LocalNBMA.Less(p.claimed()) }

// shouldInitiate applies the initiation policy of doc.go ("Who initiates")
// and docs/strongswan.md ("Who initiates").
func (m *Manager) shouldInitiate(ps *peerState, now time.Time) bool {
	switch ps.peer.Initiate {
	case Respond:
		// Once, after charon was lost with the SA up; never towards a
		// peer behind NAT (its NAT would drop IKE_SA_INIT).
		return ps.recover && !ps.peer.natted()
	case Initiate:
		return true
	case InitiateTieBreak:
		if m.cfg.BehindNAT {
			return true // nobody can initiate towards us
		}
		if ps.peer.natted() {
			return false // the NAT would drop our IKE_SA_INIT
		}
		return m.lowerThan(ps.peer) || !now.Before(ps.wantSince.Add(m.cfg.FallbackDelay))
	}
	return false
}

func (m *Manager) maybeInitiate(ctx context.Context, ps *peerState, now time.Time) error {
	st, sas := m.peerSAs(ps)
	if st == StatusUp {
		ps.initiating = false
		ps.attempts = 0
		ps.recover = false
		return nil
	}
	for _, sa := range sas {
		if sa.State != ikeStateUp && !ps.initiating {
			return nil // an IKE_SA is being set up (perhaps by the peer)
		}
	}
	if !m.shouldInitiate(ps, now) {
		return nil
	}
	if ps.initiating {
		if now.Before(ps.lastAttempt.Add(m.cfg.ConnectTimeout)) {
			return nil
		}
		// Timed out: clear the half-open SA and retry after backoff.
		// A recovery attempt is not retried: the peer initiates once
		// its own DPD notices.
		ps.initiating = false
		ps.recover = false
		ps.reason = ReasonTimeout
		ps.nextAttempt = now.Add(m.retryAfter(ps.attempts))
		if _, err := m.call(ctx, cmdTerminate, renderTerminateConn(ps.conn)); errors.Is(err, ErrConnection) {
			return err
		}
		m.dropSAs(ps.conn)
		return nil
	}
	if now.Before(ps.nextAttempt) {
		return nil
	}
	ps.attempts++
	ps.lastAttempt = now
	_, err := m.call(ctx, cmdInitiate, renderInitiate(ps.conn))
	if err != nil {
		if errors.Is(err, ErrConnection) {
			return err
		}
		ps.reason = err.Error()
		ps.nextAttempt = now.Add(m.retryAfter(ps.attempts))
		ps.recover = false
		m.log.Warn("initiate failed", zap.String("peer", ps.peer.name()), zap.Error(err))
		return nil
	}
	ps.initiating = true
	m.log.Info("initiating", zap.String("peer", ps.peer.name()), zap.Stringer("remote", ps.peer.RemoteNBMA),
		zap.Int("attempt", ps.attempts), zap.Bool("after_charon_loss", ps.peer.Initiate == Respond))
	return nil
}

// saKey returns the claimed NBMA address an SA on the responder connection
// belongs to: the inner address of a tunnel-mode child, else the remote
// IKE address.
func saKey(sa SAInfo) string {
	for _, c := range sa.Children {
		if c.Mode == childModeTunnel {
			for _, ts := range c.RemoteTS {
				if a, ok := tsHost(ts); ok {
					return a.String()
				}
			}
		}
	}
	return sa.Remote.Addr().String()
}

// peerSAs derives a peer's status from the SAs attributed to it.
func (m *Manager) peerSAs(ps *peerState) (Status, []SAInfo) {
	var mine []SAInfo
	for _, id := range slices.Sorted(maps.Keys(m.sas)) {
		sa := m.sas[id]
		if sa.Conn == ps.conn || (sa.Conn == responderConn && saKey(sa) == ps.peer.claimed().String()) {
			sa.Terminating = m.killed[id]
			mine = append(mine, sa)
		}
	}
	st := StatusDown
	if ps.initiating {
		st = StatusConnecting
	}
	for _, sa := range mine {
		if sa.Terminating {
			continue
		}
		st = max(st, StatusConnecting)
		if sa.State != ikeStateUp {
			continue
		}
		for _, c := range sa.Children {
			if c.State == childStateUp {
				st = StatusUp
			}
		}
	}
	return st, mine
}
