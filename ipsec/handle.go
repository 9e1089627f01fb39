package ipsec

import (
	"maps"
	"slices"
	"time"

	"github.com/strongswan/govici/vici"
	"go.uber.org/zap"
)

// handleEvent applies one charon event to the SA table. Malformed events
// are logged, counted and dropped.
func (m *Manager) handleEvent(e vici.Event) {
	ev, err := parseEvent(e.Name, e.Message, time.Now())
	if err != nil {
		m.log.Warn("dropping malformed event", zap.String("event", e.Name), zap.Error(err))
		m.mu.Lock()
		m.malformed++
		m.mu.Unlock()
		return
	}
	if !ownConn(ev.sa.Conn) {
		return
	}
	id := ev.sa.UniqueID
	now := time.Now()
	switch ev.kind {
	case evIKEUpdown:
		if ev.up {
			sa := ev.sa
			sa.Children = m.sas[id].Children
			m.sas[id] = sa
			if sa.NATLocal && !m.natLocal {
				m.log.Info("charon detected a NAT in front of this node; using tunnel mode",
					zap.Stringer("local", sa.Local))
				m.natLocal, m.natSwitch = true, !m.cfg.BehindNAT
			}
		} else {
			// An SA this end already dropped (terminated, or its
			// connection reloaded) or is terminating is no news.
			_, known := m.sas[id]
			if known && !m.killed[id] {
				m.noteDown(ev.sa, ReasonIKEDeleted, now)
			}
			delete(m.sas, id)
			delete(m.killed, id)
		}
	case evChildUpdown:
		sa, ok := m.sas[id]
		if !ok {
			sa = ev.sa
			sa.Children = nil
		}
		for _, c := range ev.sa.Children {
			sa.Children = slices.DeleteFunc(sa.Children, func(o ChildInfo) bool { return o.Name == c.Name })
			if ev.up {
				sa.Children = append(sa.Children, c)
			}
		}
		if !ev.up && ok && !m.killed[id] {
			m.noteDown(ev.sa, ReasonChildDeleted, now)
		}
		if ev.up || ok {
			m.sas[id] = sa
		}
	case evIKERekey:
		// The children move from the old IKE_SA to the new one.
		sa := ev.sa
		sa.Children = m.sas[ev.old.UniqueID].Children
		delete(m.sas, ev.old.UniqueID)
		if cur, ok := m.sas[id]; ok && len(cur.Children) > 0 {
			sa.Children = cur.Children
		}
		m.sas[id] = sa
	case evChildRekey:
		if sa, ok := m.sas[id]; ok {
			for _, c := range ev.sa.Children {
				sa.Children = slices.DeleteFunc(sa.Children, func(o ChildInfo) bool { return o.Name == c.Name })
				sa.Children = append(sa.Children, c)
			}
			m.sas[id] = sa
		}
	}
}

// noteDown records why a peer lost an SA and schedules re-initiation.
func (m *Manager) noteDown(sa SAInfo, reason string, now time.Time) {
	for _, name := range slices.Sorted(maps.Keys(m.peers)) {
		ps := m.peers[name]
		if sa.Conn == ps.conn || (sa.Conn == responderConn && saKey(sa) == ps.peer.claimed().String()) {
			ps.reason = reason
			ps.initiating = false
			// Both ends see the loss: in a tie-break the lower end again
			// gets FallbackDelay to re-initiate first.
			ps.wantSince = now
			if ps.attempts == 0 {
				ps.nextAttempt = now
			}
		}
	}
}
