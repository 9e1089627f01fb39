package ipsec

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/strongswan/govici/vici"
)

// saEvent is a parsed ike-updown, child-updown, rekey or list-sa message.
type saEvent struct {
	kind string // event name
	up   bool
	sa   SAInfo
	old  *SAInfo // ike-rekey: the replaced SA
}

func str(m *vici.Message, k string) string {
	s, _ := m.Get(k).(string)
	return s
}

func list(m *vici.Message, k string) []string {
	s, _ := m.Get(k).([]string)
	return s
}

func section(m *vici.Message, k string) *vici.Message {
	s, _ := m.Get(k).(*vici.Message)
	return s
}

func addrPort(host, port string) netip.AddrPort {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		p = 0
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p))
}

// parseSA reads the per-IKE_SA body that list-sa and the updown events share.
func parseSA(conn string, b *vici.Message) (SAInfo, error) {
	sa := SAInfo{
		Conn:      conn,
		UniqueID:  str(b, "uniqueid"),
		State:     str(b, "state"),
		Initiator: str(b, "initiator") == "yes",
		Local:     addrPort(str(b, "local-host"), str(b, "local-port")),
		Remote:    addrPort(str(b, "remote-host"), str(b, "remote-port")),
		LocalID:   str(b, "local-id"),
		RemoteID:  str(b, "remote-id"),
		NATLocal:  str(b, "nat-local") == "yes",
		NATRemote: str(b, "nat-remote") == "yes",
	}
	if sa.UniqueID == "" {
		return sa, fmt.Errorf("ipsec: SA of %q without uniqueid", conn)
	}
	if cs := section(b, "child-sas"); cs != nil {
		for _, key := range cs.Keys() {
			c := section(cs, key)
			if c == nil {
				continue
			}
			if n := section(c, "new"); n != nil { // child-rekey
				c = n
			}
			name := str(c, "name")
			if name == "" {
				name = key
			}
			sa.Children = append(sa.Children, ChildInfo{
				Name:     name,
				UniqueID: str(c, "uniqueid"),
				State:    str(c, "state"),
				Mode:     str(c, "mode"),
				Encap:    str(c, "encap") == "yes",
				LocalTS:  list(c, "local-ts"),
				RemoteTS: list(c, "remote-ts"),
			})
		}
		sort.Slice(sa.Children, func(i, j int) bool { return sa.Children[i].UniqueID < sa.Children[j].UniqueID })
	}
	return sa, nil
}

// parseEvent parses one event message. Malformed messages are errors.
func parseEvent(name string, m *vici.Message) (saEvent, error) {
	if m == nil {
		return saEvent{}, fmt.Errorf("ipsec: %s event without message", name)
	}
	ev := saEvent{kind: name, up: str(m, "up") == "yes"}
	var conn string
	for _, k := range m.Keys() {
		if section(m, k) != nil {
			if conn != "" {
				return ev, fmt.Errorf("ipsec: %s event with several SA sections", name)
			}
			conn = k
		}
	}
	if conn == "" {
		return ev, fmt.Errorf("ipsec: %s event without SA section", name)
	}
	body := section(m, conn)
	if name == evIKERekey {
		o, n := section(body, "old"), section(body, "new")
		if o == nil || n == nil {
			return ev, fmt.Errorf("ipsec: ike-rekey event without old/new")
		}
		old, err := parseSA(conn, o)
		if err != nil {
			return ev, err
		}
		ev.old = &old
		body = n
	}
	sa, err := parseSA(conn, body)
	if err != nil {
		return ev, err
	}
	ev.sa = sa
	return ev, nil
}
