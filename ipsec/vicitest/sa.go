package vicitest

import "strconv"

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
	Children   []ChildSA
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
	if children {
		cs := NewMessage()
		for _, c := range sa.Children {
			cm := NewMessage().
				Set("name", c.Name).
				Set("uniqueid", strconv.FormatUint(uint64(c.UniqueID), 10)).
				Set("reqid", strconv.FormatUint(uint64(c.UniqueID), 10)).
				Set("state", c.State).
				Set("mode", c.Mode).
				Set("protocol", "ESP").
				Set("spi-in", "c0000001").
				Set("spi-out", "c0000002").
				Set("local-ts", append([]string{}, c.LocalTS...)).
				Set("remote-ts", append([]string{}, c.RemoteTS...))
			if c.Encap {
				cm.Set("encap", "yes")
			}
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
