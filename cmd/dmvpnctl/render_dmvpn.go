package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

const dmvpnLegend = `Legend: Attrb --> S - Static, D - Dynamic, N - NATed, T1 - Route Installed
        # Ent --> Number of NHRP entries with the same NBMA peer
        NHS Status: R --> Responding, E --> Expecting Replies, W --> Waiting, D --> Down
        UpDn Tm --> Up or Down Time of the peer; Observed NBMA --> post-NAT address
`

var attrLetters = map[api.Attr]string{
	api.AttrStatic: "S", api.AttrDynamic: "D", api.AttrNAT: "N", api.AttrRouteInstalled: "T1",
}

// attrOrder is the order letters appear in, as Cisco prints them (DT1, SN).
var attrOrder = []api.Attr{api.AttrStatic, api.AttrDynamic, api.AttrNAT, api.AttrRouteInstalled}

func attrString(attrs []api.Attr) string {
	has := map[api.Attr]bool{}
	for _, a := range attrs {
		has[a] = true
	}
	var b strings.Builder
	for _, a := range attrOrder {
		if has[a] {
			b.WriteString(attrLetters[a])
			delete(has, a)
		}
	}
	for _, a := range attrs { // unknown attributes, spelt out
		if has[a] {
			b.WriteString("(" + string(a) + ")")
		}
	}
	return orDash(b.String())
}

func renderDMVPN(w io.Writer, d api.DMVPN, now time.Time) error {
	var b strings.Builder
	b.WriteString(dmvpnLegend)
	b.WriteString(strings.Repeat("=", 78) + "\n\n")
	fmt.Fprintf(&b, "Interface: %s, IPv4 NHRP Details\n", d.Interface)
	fmt.Fprintf(&b, "Type:%s, NHRP Peers:%d,\n", titleCase(d.Role), len(d.Peers))
	fmt.Fprintf(&b, "Local: tunnel %s, NBMA %s\n\n", orDash(prefixString(d.Address)), addr(d.NBMA))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	t := newTable(
		column{title: "# Ent", right: true}, column{title: "Peer NBMA Addr"}, column{title: "Peer Tunnel Addr"},
		column{title: "State"}, column{title: "UpDn Tm", right: true}, column{title: "Attrb"}, column{title: "Observed NBMA"},
	)
	for _, p := range d.Peers {
		obs := "-"
		if p.ObservedNBMA.IsValid() && p.ObservedNBMA != p.NBMA {
			obs = p.ObservedNBMA.String()
		}
		t.add(strconv.Itoa(p.Entries), addr(p.NBMA), addr(p.Tunnel), string(p.State), since(now, p.Since), attrString(p.Attrs), obs)
	}
	if err := t.write(w); err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return renderNHS(w, d.NHS, now)
}

var nhsLetters = map[api.NHSState]string{
	api.NHSResponding: "R", api.NHSExpecting: "E", api.NHSWaiting: "W", api.NHSDown: "D",
}

func renderNHS(w io.Writer, nhs []api.NHS, now time.Time) error {
	if len(nhs) == 0 {
		_, err := io.WriteString(w, "NHS: none configured\n")
		return err
	}
	t := newTable(column{title: "NHS NBMA Addr"}, column{title: "NHS Tunnel Addr"}, column{title: "Pri", right: true},
		column{title: "Status"}, column{title: "Since", right: true}, column{title: "Expires", right: true}, column{title: "Reason"})
	for _, n := range nhs {
		proto := addr(n.Protocol)
		if n.Dynamic {
			if n.Protocol.IsValid() {
				proto += " (dynamic)"
			} else {
				proto = "dynamic"
			}
		}
		st, ok := nhsLetters[n.State]
		if !ok {
			st = string(n.State)
		}
		t.add(addr(n.NBMA), proto, strconv.Itoa(n.Priority), st, since(now, n.Since), until(now, n.Expires), orDash(n.Reason))
	}
	return t.write(w)
}
