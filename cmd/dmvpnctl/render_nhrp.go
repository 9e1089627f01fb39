package main

import (
	"io"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func renderCache(w io.Writer, entries []api.CacheEntry, now time.Time) error {
	if len(entries) == 0 {
		_, err := io.WriteString(w, "NHRP cache is empty\n")
		return err
	}
	t := newTable(column{title: "Type"}, column{title: "Prefix"}, column{title: "Tunnel Addr"}, column{title: "NBMA Addr"},
		column{title: "Observed NBMA"}, column{title: "Expires", right: true}, column{title: "Flags"})
	for _, e := range entries {
		obs := "-"
		if e.ObservedNBMA.IsValid() && e.ObservedNBMA != e.NBMA {
			obs = e.ObservedNBMA.String()
		}
		t.add(string(e.Type), orDash(prefixString(e.Prefix)), addr(e.Tunnel), addr(e.NBMA), obs, until(now, e.Expires), joinOrDash(e.Flags))
	}
	return t.write(w)
}

func renderShortcuts(w io.Writer, sc []api.Shortcut, now time.Time) error {
	if len(sc) == 0 {
		_, err := io.WriteString(w, "No NHRP shortcuts\n")
		return err
	}
	t := newTable(column{title: "Prefix"}, column{title: "Via"}, column{title: "NBMA Addr"},
		column{title: "Expires", right: true})
	for _, s := range sc {
		t.add(orDash(prefixString(s.Prefix)), addr(s.Via), addr(s.NBMA), until(now, s.Expires))
	}
	return t.write(w)
}
