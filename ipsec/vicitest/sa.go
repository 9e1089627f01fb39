package vicitest

import (
	"fmt"
	"strconv"
)

// SA describes an IKE SA the way charon reports it in list-sa, ike-updown and
// child-updown events.
type SA struct {
	Conn       string // IKE config name
	UniqueID   uint32
	State      string // e.g. ESTABLISHED, DELETING, CONNECTING
	LocalHost  string
	LocalPort  uint16
	RemoteHost string
	RemotePort uint16
	LocalID    string
	RemoteID   string
	Initiator  bool
	NATLocal   bool
	NATRemote  bool
	// IKE proposal and times in seconds, rendered when set.
	EncrAlg     string
	EncrKeySize int
	IntegAlg    string
	PRFAlg      string
	DHGroup     string
	Established uint32 // seconds since the SA was established
	RekeyTime   uint32 // seconds until rekeying
	Children    []ChildSA
}

// ChildSA describes a CHILD_SA.
type ChildSA struct {
	Name     string
	UniqueID uint32
	State    string // e.g. INSTALLED, DELETING
	Mode     string // TRANSPORT or TUNNEL
	Encap    bool
	LocalTS  []string
	RemoteTS []string
	// SPIIn and SPIOut default to c0000001 and c0000002.
	SPIIn, SPIOut string
	// MarkIn and MarkOut, rendered when non-zero as charon prints them
	// ("%.8x").
	MarkIn, MarkOut uint32
	// Proposal, rendered when set (IntegAlg stays empty for AEAD).
	EncrAlg     string
	EncrKeySize int
	IntegAlg    string
	// Traffic counters, always rendered as charon does.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
	// Times in seconds: since installation, until rekeying, until expiry.
	InstallTime, RekeyTime, LifeTime uint32
}

func (sa SA) body(children bool) *Message {
	m := NewMessage().
		Set("uniqueid", strconv.FormatUint(uint64(sa.UniqueID), 10)).
		Set("version", "2").
		Set("state", sa.State).
		Set("local-host", sa.LocalHost).
		Set("local-port", strconv.Itoa(int(sa.LocalPort))).
		Set("local-id", sa.LocalID).
		Set("remote-host", sa.RemoteHost).
		Set("remote-port", strconv.Itoa(int(sa.RemotePort))).
		Set("remote-id", sa.RemoteID).
		Set("initiator-spi", "0011223344556677").
		Set("responder-spi", "8899aabbccddeeff")
	if sa.Initiator {
		m.Set("initiator", "yes")
	}
	if sa.NATLocal {
		m.Set("nat-local", "yes")
	}
	if sa.NATRemote {
		m.Set("nat-remote", "yes")
	}
	if sa.NATLocal || sa.NATRemote {
		m.Set("nat-any", "yes")
	}
	setIf(m, "encr-alg", sa.EncrAlg)
	if sa.EncrKeySize != 0 {
		m.Set("encr-keysize", strconv.Itoa(sa.EncrKeySize))
	}
	setIf(m, "integ-alg", sa.IntegAlg)
	setIf(m, "prf-alg", sa.PRFAlg)
	setIf(m, "dh-group", sa.DHGroup)
	if sa.State == "ESTABLISHED" {
		m.Set("established", u32(sa.Established))
		if sa.RekeyTime != 0 {
			m.Set("rekey-time", u32(sa.RekeyTime))
		}
	}
	if children {
		cs := NewMessage()
		for _, c := range sa.Children {
			cm := NewMessage().
				Set("name", c.Name).
				Set("uniqueid", strconv.FormatUint(uint64(c.UniqueID), 10)).
				Set("reqid", strconv.FormatUint(uint64(c.UniqueID), 10)).
				Set("state", c.State).
				Set("mode", c.Mode).
				Set("protocol", "ESP")
			if c.Encap {
				cm.Set("encap", "yes")
			}
			cm.Set("spi-in", orDefault(c.SPIIn, "c0000001")).
				Set("spi-out", orDefault(c.SPIOut, "c0000002"))
			if c.MarkIn != 0 {
				cm.Set("mark-in", fmt.Sprintf("%.8x", c.MarkIn))
			}
			if c.MarkOut != 0 {
				cm.Set("mark-out", fmt.Sprintf("%.8x", c.MarkOut))
			}
			setIf(cm, "encr-alg", c.EncrAlg)
			if c.EncrKeySize != 0 {
				cm.Set("encr-keysize", strconv.Itoa(c.EncrKeySize))
			}
			setIf(cm, "integ-alg", c.IntegAlg)
			cm.Set("bytes-in", u64(c.BytesIn)).
				Set("packets-in", u64(c.PacketsIn)).
				Set("bytes-out", u64(c.BytesOut)).
				Set("packets-out", u64(c.PacketsOut))
			if c.RekeyTime != 0 {
				cm.Set("rekey-time", u32(c.RekeyTime))
			}
			if c.LifeTime != 0 {
				cm.Set("life-time", u32(c.LifeTime))
			}
			cm.Set("install-time", u32(c.InstallTime)).
				Set("local-ts", append([]string{}, c.LocalTS...)).
				Set("remote-ts", append([]string{}, c.RemoteTS...))
			cs.Set(c.Name+"-"+strconv.FormatUint(uint64(c.UniqueID), 10), cm)
		}
		m.Set("child-sas", cs)
	}
	return m
}

// ListSA renders one list-sa event.
func ListSA(sa SA) *Message { return NewMessage().Set(sa.Conn, sa.body(true)) }

// IKEUpdown renders an ike-updown event.
func IKEUpdown(up bool, sa SA) *Message {
	m := NewMessage()
	if up {
		m.Set("up", "yes")
	}
	return m.Set(sa.Conn, sa.body(false))
}

// ChildUpdown renders a child-updown event; sa.Children holds the affected child.
func ChildUpdown(up bool, sa SA) *Message {
	m := NewMessage()
	if up {
		m.Set("up", "yes")
	}
	return m.Set(sa.Conn, sa.body(true))
}

// IKERekey renders an ike-rekey event from old to new.
func IKERekey(old, new SA) *Message {
	return NewMessage().Set(old.Conn, NewMessage().Set("old", old.body(false)).Set("new", new.body(false)))
}

func setIf(m *Message, k, v string) {
	if v != "" {
		m.Set(k, v)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
func u64(n uint64) string { return strconv.FormatUint(n, 10) }
