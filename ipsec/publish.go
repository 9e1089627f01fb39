package ipsec

import (
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
)

// publish rebuilds the State snapshot and emits an Event for every peer
// whose status, reason or observed endpoint changed.
func (m *Manager) publish(connected bool) {
	now := time.Now()
	st := State{Connected: connected, Daemon: m.daemon, Reconnects: max(m.reconnects-1, 0)}
	attributed := map[string]bool{}
	var evs []peerEvent
	for _, name := range slices.Sorted(maps.Keys(m.peers)) {
		ps := m.peers[name]
		status, sas := m.peerSAs(ps)
		ev := Event{Peer: name, Status: status, Time: now}
		for _, sa := range sas {
			attributed[sa.UniqueID] = true
			// Report the endpoint of an established SA, preferring one
			// that is not being terminated as a duplicate.
			if sa.State == ikeStateUp && (!ev.Observed.IsValid() || !sa.Terminating) {
				ev.Observed = sa.Remote
				ev.NATRemote = sa.NATRemote
			}
		}
		if status != StatusUp {
			ev.Reason = ps.reason
		}
		if status != ps.status {
			ps.status = status
			ps.since = now
		}
		if status == StatusUp {
			ps.reason = ""
		}
		evs = append(evs, peerEvent{ps, ev})
		st.Peers = append(st.Peers, PeerState{
			Name:         name,
			Conn:         ps.conn,
			RemoteNBMA:   ps.peer.RemoteNBMA,
			ClaimedNBMA:  ps.peer.claimed(),
			Initiate:     ps.peer.Initiate,
			Tunnel:       m.usesTunnel(ps.peer),
			Status:       status,
			Reason:       ev.Reason,
			Since:        ps.since,
			Observed:     ev.Observed,
			NATRemote:    ev.NATRemote,
			Attempts:     ps.attempts,
			NextAttempt:  ps.nextAttempt,
			LoadFailures: ps.loadFails,
			LoadRetry:    ps.loadRetry,
			SAs:          sas,
		})
	}
	for _, id := range slices.Sorted(maps.Keys(m.sas)) {
		if !attributed[id] {
			sa := m.sas[id]
			sa.Terminating = m.killed[id]
			st.Unattributed = append(st.Unattributed, sa)
		}
	}
	// The snapshot and its events become visible at once: a reader of an
	// event sees a State at least as new, and a reader that sees the new
	// Generation finds the snapshot's events already queued (the
	// controller drains them before it acts on the snapshot, so an SA is
	// reported up before anything it protects).
	m.mu.Lock()
	st.Generation = m.snap.Generation + 1
	m.snap = st
	for _, e := range evs {
		m.emitLocked(e.ps, e.ev)
	}
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default: // one is pending: its reader will see this snapshot
	}
}

type peerEvent struct {
	ps *peerState
	ev Event
}

// emit sends ev if it differs from the last event sent for the peer.
func (m *Manager) emit(ps *peerState, ev Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.emitLocked(ps, ev)
}

// emitLocked is emit with m.mu held.
func (m *Manager) emitLocked(ps *peerState, ev Event) {
	last := ps.emitted
	if last.Status == ev.Status && last.Reason == ev.Reason && last.Observed == ev.Observed &&
		last.NATRemote == ev.NATRemote && last.Peer == ev.Peer {
		return
	}
	ps.emitted = ev
	if ev.Status == StatusUp || last.Status != ev.Status {
		m.log.Info("peer state", zap.String("peer", ev.Peer), zap.Stringer("status", ev.Status),
			zap.String("reason", ev.Reason), zap.Stringer("observed", ev.Observed))
	}
	select {
	case m.events <- ev:
	default:
		m.dropped++
	}
}
