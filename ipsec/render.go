package ipsec

import (
	"net/netip"

	"github.com/strongswan/govici/vici"
)

// This file renders the VICI request messages. Every value is set as a
// string or list of strings explicitly: govici would render an int zero as
// "0" and false as "no", which are meaningful to charon.

// proposals are the IKE and ESP proposals offered on every connection.
type proposals struct {
	ike, esp []string
}

func newMsg() *vici.Message { return vici.NewMessage() }

// flatMsg renders a message of string values only; kv alternates keys and
// values, in the order charon receives them.
func flatMsg(kv ...string) *vici.Message {
	m := newMsg()
	for i := 0; i+1 < len(kv); i += 2 {
		set(m, kv[i], kv[i+1])
	}
	return m
}

// set ignores errors: only string, []string and *vici.Message are used.
func set(m *vici.Message, k string, v any) *vici.Message {
	_ = m.Set(k, v)
	return m
}

func (m *Manager) localID() string {
	if m.cfg.LocalID != "" {
		return m.cfg.LocalID
	}
	if m.cfg.Auth.Method == AuthPSK {
		return m.cfg.LocalNBMA.String()
	}
	return "" // certificate subject
}

func (m *Manager) authSections(remoteID string) (local, remote *vici.Message) {
	local, remote = newMsg(), newMsg()
	switch m.cfg.Auth.Method {
	case AuthPSK:
		set(local, "auth", "psk")
		set(remote, "auth", "psk")
	case AuthX509:
		set(local, "auth", "pubkey")
		set(local, "certs", []string{string(m.creds.cert)})
		set(remote, "auth", "pubkey")
		set(remote, "cacerts", []string{string(m.creds.ca)})
	}
	if id := m.localID(); id != "" {
		set(local, "id", id)
	}
	set(remote, "id", remoteID)
	return local, remote
}

func ikeSection(local netip.Addr, remote string, p proposals, l, r, children *vici.Message) *vici.Message {
	s := newMsg()
	set(s, "version", "2")
	set(s, "local_addrs", []string{local.String()})
	set(s, "remote_addrs", []string{remote})
	set(s, "proposals", p.ike)
	set(s, "mobike", "no")
	set(s, "unique", uniqueReplace)
	set(s, "dpd_delay", defaultDPDDelay)
	set(s, "local", l)
	set(s, "remote", r)
	set(s, "children", children)
	return s
}

func childSection(tunnel bool, localTS, remoteTS []string, esp []string) *vici.Message {
	c := newMsg()
	if tunnel {
		set(c, "mode", "tunnel")
	} else {
		set(c, "mode", "transport")
	}
	set(c, "local_ts", localTS)
	set(c, "remote_ts", remoteTS)
	set(c, "esp_proposals", esp)
	set(c, "start_action", "none")
	set(c, "close_action", "none")
	set(c, "dpd_action", "clear")
	return c
}

// markNAT gives a NAT tunnel-mode child its own XFRM marks when
// Config.MarkNAT is set: %unique allocates one per CHILD_SA, set_mark_in
// marks the decrypted packets with the inbound value so that its inbound
// policy (marked too) matches them. The inbound SA itself stays unmarked
// (mark_in_sa = no): destination, protocol and SPI find it.
func (m *Manager) markNAT(c *vici.Message) *vici.Message {
	if m.cfg.MarkNAT {
		set(c, "mark_in", markUnique)
		set(c, "set_mark_in", markSame)
		set(c, "mark_out", markUnique)
	}
	return c
}

func hostTS(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() + greSelector }

// peerRemoteID is the IKE identity a peer must present.
func (m *Manager) peerRemoteID(p Peer) string {
	if p.RemoteID != "" {
		return p.RemoteID
	}
	if m.cfg.Auth.Method == AuthPSK || (p.natted() && !m.cfg.CertifiedIdentities) {
		return p.claimed().String()
	}
	return "%any"
}

// usesTunnel reports whether the SA with p needs tunnel mode: a NAT on
// either side (docs/strongswan.md, "Spokes behind NAT").
func (m *Manager) usesTunnel(p Peer) bool { return p.natted() || m.behindNAT() }

// behindNAT: configured, or detected by charon on an IKE_SA (nat-local).
func (m *Manager) behindNAT() bool { return m.cfg.BehindNAT || m.natLocal }

// renderPeerConn renders load-conn for one peer.
func (m *Manager) renderPeerConn(p Peer) *vici.Message {
	var child *vici.Message
	if m.usesTunnel(p) {
		child = childSection(true, []string{hostTS(m.cfg.LocalNBMA)}, []string{hostTS(p.claimed())}, m.props.esp)
		if p.natted() {
			m.markNAT(child)
		}
	} else {
		child = childSection(false, []string{dynamicSelector}, []string{dynamicSelector}, m.props.esp)
	}
	l, r := m.authSections(m.peerRemoteID(p))
	children := set(newMsg(), childName, child)
	return set(newMsg(), connName(p), ikeSection(m.cfg.LocalNBMA, p.RemoteNBMA.String(), m.props, l, r, children))
}

// renderResponderConn renders the connection that accepts any peer.
func (m *Manager) renderResponderConn() *vici.Message {
	children := newMsg()
	set(children, childName, childSection(false, []string{dynamicSelector}, []string{dynamicSelector}, m.props.esp))
	if len(m.cfg.NATInnerPrefixes) > 0 {
		var remote []string
		for _, p := range m.cfg.NATInnerPrefixes {
			remote = append(remote, p.Masked().String()+greSelector)
		}
		set(children, natChildName, m.markNAT(childSection(true, []string{hostTS(m.cfg.LocalNBMA)}, remote, m.props.esp)))
	}
	l, r := m.authSections("%any")
	ike := ikeSection(m.cfg.LocalNBMA, "%any", m.props, l, r, children)
	if m.cfg.MarkNAT {
		// Two spokes behind different NATs with one private NBMA assert
		// one identity (a group PSK): charon's uniqueness would delete
		// the first one's IKE_SA when the second authenticates (lab:
		// "destroying duplicate IKE_SA ... received INITIAL_CONTACT").
		// enforce removes real duplicates (same identity and address).
		set(ike, "unique", uniqueNever)
	}
	return set(newMsg(), responderConn, ike)
}

func connName(p Peer) string { return connPrefix + "peer-" + p.name() }

func renderUnload(name string) *vici.Message { return flatMsg("name", name) }

func renderInitiate(conn string) *vici.Message {
	return flatMsg("child", childName, "ike", conn, "timeout", nonblockingParam, "init-limits", "no")
}

func renderTerminateConn(conn string) *vici.Message {
	return flatMsg("ike", conn, "timeout", nonblockingParam, "force", "yes")
}

func renderTerminateID(id string) *vici.Message {
	return flatMsg("ike-id", id, "timeout", nonblockingParam)
}

// renderLoadShared renders the group PSK; no owners means any identity.
func (m *Manager) renderLoadShared() *vici.Message {
	return flatMsg("id", pskID, "type", "IKE", "data", m.cfg.Auth.PSK.Reveal())
}

func renderLoadCert(data []byte, ca bool) *vici.Message {
	flag := "NONE"
	if ca {
		flag = "CA"
	}
	return flatMsg("type", "X509", "flag", flag, "data", string(data))
}

func (m *Manager) renderLoadKey() *vici.Message {
	return flatMsg("type", m.creds.keyType, "data", string(m.creds.key))
}
