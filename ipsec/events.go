package ipsec

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strongswan/govici/vici"
)

// saEvent is a parsed ike-updown, child-updown, rekey or list-sa message.
type saEvent struct {
	kind string // event name
	up   bool
	sa   SAInfo
	old  *SAInfo // ike-rekey: the replaced SA
}

// str, list and section read a value of the expected type; a missing
// message, key or type is the zero value (charon's replies are input).
func str(m *vici.Message, k string) string {
	if m == nil {
		return ""
	}
	s, _ := m.Get(k).(string)
	return s
}

func list(m *vici.Message, k string) []string {
	if m == nil {
		return nil
	}
	s, _ := m.Get(k).([]string)
	return s
}

func section(m *vici.Message, k string) *vici.Message {
	if m == nil {
		return nil
	}
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

// num reads a decimal number; absent or malformed is 0.
func num(m *vici.Message, k string) uint64 {
	n, _ := strconv.ParseUint(str(m, k), 10, 64)
	return n
}

// hex32 parses a mark as charon's list-sas prints it ("%.8x"; a leading
// 0x is accepted); 0 when absent or malformed.
func hex32(m *vici.Message, k string) uint32 {
	n, _ := strconv.ParseUint(strings.TrimPrefix(str(m, k), "0x"), 16, 32)
	return uint32(n)
}

// ago is the time k seconds before now; zero when k is absent.
func ago(m *vici.Message, k string, now time.Time) time.Time {
	if str(m, k) == "" {
		return time.Time{}
	}
	return now.Add(-time.Duration(num(m, k)) * time.Second)
}

// in is the time k seconds after now; zero when k is absent.
func in(m *vici.Message, k string, now time.Time) time.Time {
	if str(m, k) == "" {
		return time.Time{}
	}
	return now.Add(time.Duration(num(m, k)) * time.Second)
}

// parseSA reads the per-IKE_SA body that list-sa and the updown events
// share (strongSwan's vici README, "list-sa"). Relative times are anchored
// at now.
func parseSA(conn string, b *vici.Message, now time.Time) (SAInfo, error) {
	sa := SAInfo{
		Conn:        conn,
		UniqueID:    str(b, "uniqueid"),
		State:       str(b, "state"),
		Initiator:   str(b, "initiator") == "yes",
		Local:       addrPort(str(b, "local-host"), str(b, "local-port")),
		Remote:      addrPort(str(b, "remote-host"), str(b, "remote-port")),
		LocalID:     str(b, "local-id"),
		RemoteID:    str(b, "remote-id"),
		NATLocal:    str(b, "nat-local") == "yes",
		NATRemote:   str(b, "nat-remote") == "yes",
		EncrAlg:     str(b, "encr-alg"),
		EncrKeySize: int(num(b, "encr-keysize")),
		IntegAlg:    str(b, "integ-alg"),
		PRFAlg:      str(b, "prf-alg"),
		DHGroup:     str(b, "dh-group"),
		Established: ago(b, "established", now),
		RekeyAt:     in(b, "rekey-time", now),
		ReauthAt:    in(b, "reauth-time", now),
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
				Name:        name,
				UniqueID:    str(c, "uniqueid"),
				State:       str(c, "state"),
				Mode:        str(c, "mode"),
				Encap:       str(c, "encap") == "yes",
				LocalTS:     list(c, "local-ts"),
				RemoteTS:    list(c, "remote-ts"),
				Protocol:    str(c, "protocol"),
				SPIIn:       str(c, "spi-in"),
				SPIOut:      str(c, "spi-out"),
				ReqID:       uint32(num(c, "reqid")),
				MarkIn:      hex32(c, "mark-in"),
				MarkOut:     hex32(c, "mark-out"),
				EncrAlg:     str(c, "encr-alg"),
				EncrKeySize: int(num(c, "encr-keysize")),
				IntegAlg:    str(c, "integ-alg"),
				DHGroup:     str(c, "dh-group"),
				BytesIn:     num(c, "bytes-in"),
				BytesOut:    num(c, "bytes-out"),
				PacketsIn:   num(c, "packets-in"),
				PacketsOut:  num(c, "packets-out"),
				Installed:   ago(c, "install-time", now),
				RekeyAt:     in(c, "rekey-time", now),
				Expires:     in(c, "life-time", now),
			})
		}
		sort.Slice(sa.Children, func(i, j int) bool { return sa.Children[i].UniqueID < sa.Children[j].UniqueID })
	}
	return sa, nil
}

// parseEvent parses one event message. Malformed messages are errors.
func parseEvent(name string, m *vici.Message, now time.Time) (saEvent, error) {
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
		old, err := parseSA(conn, o, now)
		if err != nil {
			return ev, err
		}
		ev.old = &old
		body = n
	}
	sa, err := parseSA(conn, body, now)
	if err != nil {
		return ev, err
	}
	ev.sa = sa
	return ev, nil
}
