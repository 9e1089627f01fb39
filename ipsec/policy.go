package ipsec

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// tsHost parses a single-host traffic selector such as "172.16.0.2/32[gre]".
func tsHost(ts string) (netip.Addr, bool) {
	if i := strings.IndexByte(ts, '['); i >= 0 {
		ts = ts[:i]
	}
	p, err := netip.ParsePrefix(ts)
	if err != nil || !p.IsSingleIP() {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

// enforce applies two policies to the SA table:
//
//   - Duplicates: a peer should have one established IKE_SA. SAs are
//     duplicates only if they come from the same address (and, on the
//     responder connection, the same identity): a newer SA from elsewhere
//     never replaces an older one (see the last rule). With several
//     (both ends initiated at once, or the peer retried while a slow
//     attempt still completed), only one end acts, so that the two ends
//     never delete different SAs and leave none:
//     if both ends initiated some of them, the end with the higher NBMA
//     address terminates the ones it initiated; if the peer initiated all
//     of them, this end keeps the newest (the peer's latest attempt, which
//     is the one it still holds) and terminates the others; if this end
//     initiated all of them, it leaves the choice to the peer.
//   - Binding: a tunnel-mode child on the responder connection (a peer
//     behind NAT) is accepted only if its inner address is bound to the
//     peer's IKE identity: the identity is that IP address, or a wanted
//     peer with that claimed address expects that identity. Anything else
//     is terminated at once.
//   - First come, first served: an inner address carried by an SA of one
//     peer (IKE identity and post-NAT address) is not taken over by an SA
//     of another; the newer SA is terminated (innerTakenOver). Not with
//     Config.MarkNAT: each such SA then has marks of its own, by which the
//     caller tells them apart.
func (m *Manager) enforce(ctx context.Context) error {
	var kill []string
	groups := map[string][]SAInfo{}
	lower := map[string]bool{}
	attributed := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(m.peers)) {
		ps := m.peers[name]
		_, sas := m.peerSAs(ps)
		for _, sa := range sas {
			attributed[sa.UniqueID] = true
			if sa.State == ikeStateUp && !sa.Terminating {
				key := "peer " + name + " " + sa.Remote.Addr().String()
				groups[key] = append(groups[key], sa)
				lower[key] = m.lowerThan(ps.peer)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(m.sas)) {
		sa := m.sas[id]
		if attributed[id] || sa.State != ikeStateUp || m.killed[id] {
			continue
		}
		key := sa.Conn + " " + sa.RemoteID + " " + saKey(sa) + " " + sa.Remote.Addr().String()
		groups[key] = append(groups[key], sa)
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		kill = append(kill, duplicates(groups[key], lower[key])...)
	}
	for _, id := range slices.Sorted(maps.Keys(m.sas)) {
		sa := m.sas[id]
		if sa.Conn != responderConn || m.killed[id] {
			continue
		}
		for _, c := range sa.Children {
			if c.Name != natChildName {
				continue
			}
			if inner, ok := m.unbound(sa, c); !ok {
				m.log.Warn("terminating SA: inner address not bound to identity",
					zap.String("remote_id", sa.RemoteID), zap.String("inner", inner), zap.String("ike_id", id))
				kill = append(kill, id)
				break
			}
		}
	}
	if !m.cfg.MarkNAT {
		kill = append(kill, m.innerTakenOver(kill)...)
	}
	for _, id := range kill {
		if m.killed[id] {
			continue
		}
		m.log.Info("terminating IKE_SA", zap.String("ike_id", id), zap.String("conn", m.sas[id].Conn))
		if _, err := m.call(ctx, cmdTerminate, renderTerminateID(id)); errors.Is(err, ErrConnection) {
			return err
		}
		m.killed[id] = true
		m.mu.Lock()
		m.terminated++
		m.mu.Unlock()
	}
	return nil
}

// duplicates picks the IKE_SAs to terminate among the established SAs of
// one peer (see enforce). weAreLower says this end has the lower NBMA address.
func duplicates(sas []SAInfo, weAreLower bool) []string {
	if len(sas) < 2 {
		return nil
	}
	var ours, theirs []SAInfo
	for _, sa := range sas {
		if sa.Initiator {
			ours = append(ours, sa)
		} else {
			theirs = append(theirs, sa)
		}
	}
	var kill []string
	switch {
	case len(ours) > 0 && len(theirs) > 0:
		if weAreLower {
			return nil
		}
		for _, sa := range ours {
			kill = append(kill, sa.UniqueID)
		}
		if len(theirs) > 1 {
			kill = append(kill, allButNewest(theirs)...)
		}
	case len(theirs) > 1:
		kill = allButNewest(theirs)
	}
	return kill
}

// allButNewest returns the unique ids of all but the SA with the highest
// unique id (charon numbers IKE_SAs in creation order).
func allButNewest(sas []SAInfo) []string {
	newest := 0
	num := func(sa SAInfo) uint64 { n, _ := strconv.ParseUint(sa.UniqueID, 10, 32); return n }
	for i, sa := range sas {
		if num(sa) > num(sas[newest]) {
			newest = i
		}
	}
	var out []string
	for i, sa := range sas {
		if i != newest {
			out = append(out, sa.UniqueID)
		}
	}
	return out
}

// unbound checks the binding policy for a NAT child; ok is false if the
// child must go.
func (m *Manager) unbound(sa SAInfo, c ChildInfo) (inner string, ok bool) {
	if len(c.RemoteTS) != 1 {
		return strings.Join(c.RemoteTS, ","), false
	}
	a, isHost := tsHost(c.RemoteTS[0])
	if !isHost {
		return c.RemoteTS[0], false
	}
	if id, err := netip.ParseAddr(sa.RemoteID); (err == nil && id == a) || m.cfg.CertifiedIdentities {
		return a.String(), true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.desired {
		if p.claimed() == a && m.peerRemoteID(p) == sa.RemoteID {
			return a.String(), true
		}
	}
	return a.String(), false
}

// innerTakenOver returns the IKE_SAs to terminate because a tunnel-mode
// child carries an inner address that an older established SA of another
// peer already carries (another IKE identity, or another post-NAT
// address). After decryption both would deliver GRE from the same source,
// so the NHRP engine could not tell them apart: a group-key holder could
// speak for a spoke behind NAT by negotiating an SA with its private
// address. The oldest SA (charon numbers IKE_SAs in creation order) keeps
// the address; SAs already being terminated (skip) do not count.
func (m *Manager) innerTakenOver(skip []string) []string {
	type owner struct {
		id     string
		remote netip.Addr
	}
	num := func(id string) uint64 { n, _ := strconv.ParseUint(id, 10, 64); return n }
	ids := slices.Collect(maps.Keys(m.sas))
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(num(a), num(b)) })
	owners := map[netip.Addr]owner{}
	var kill []string
	for _, id := range ids {
		sa := m.sas[id]
		if sa.State != ikeStateUp || m.killed[id] || slices.Contains(skip, id) {
			continue
		}
		for _, c := range sa.Children {
			if c.Mode != childModeTunnel || len(c.RemoteTS) != 1 {
				continue
			}
			inner, ok := tsHost(c.RemoteTS[0])
			if !ok || inner == sa.Remote.Addr() {
				continue
			}
			me := owner{sa.RemoteID, sa.Remote.Addr()}
			if o, taken := owners[inner]; taken && o != me {
				m.log.Warn("terminating SA: its inner address belongs to an older SA of another peer",
					zap.Stringer("inner", inner), zap.String("remote_id", sa.RemoteID), zap.Stringer("remote", sa.Remote),
					zap.String("owner_id", o.id), zap.Stringer("owner_remote", o.remote), zap.String("ike_id", id))
				kill = append(kill, id)
				break
			}
			owners[inner] = me
		}
	}
	return kill
}
