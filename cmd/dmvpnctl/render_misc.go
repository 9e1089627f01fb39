package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

func renderBGP(w io.Writer, s api.BGPSummary, now time.Time) error {
	if !s.Enabled {
		_, err := io.WriteString(w, "BGP is not enabled\n")
		return err
	}
	if _, err := fmt.Fprintf(w, "BGP router identifier %s, local AS number %d\nNeighbors: %d\n\n", addr(s.RouterID), s.AS, len(s.Neighbors)); err != nil {
		return err
	}
	if len(s.Neighbors) == 0 {
		_, err := io.WriteString(w, "No BGP neighbors\n")
		return err
	}
	t := newTable(column{title: "Neighbor"}, column{title: "AS", right: true}, column{title: "Up/Down", right: true},
		column{title: "State"}, column{title: "PfxRcd", right: true}, column{title: "PfxAcc", right: true},
		column{title: "PfxRej", right: true}, column{title: "Type"})
	var downs []string
	for _, n := range s.Neighbors {
		kind := "static"
		if n.Dynamic {
			kind = "dynamic"
		}
		t.add(addr(n.Address), strconv.FormatUint(uint64(n.AS), 10), since(now, n.Since), n.State,
			strconv.Itoa(n.Received), strconv.Itoa(n.Accepted), strconv.Itoa(n.Rejected), kind)
		if n.LastDown != "" || n.MaxPrefixTeardowns > 0 {
			downs = append(downs, fmt.Sprintf("%s last down: %s (max-prefix teardowns: %d)", addr(n.Address), n.LastDown, n.MaxPrefixTeardowns))
		}
	}
	if err := t.write(w); err != nil {
		return err
	}
	if len(downs) > 0 {
		_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(downs, "\n"))
		return err
	}
	return nil
}

func renderCounters(w io.Writer, c api.Counters) error {
	if len(c) == 0 {
		_, err := io.WriteString(w, "No counters\n")
		return err
	}
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	t := newTable(column{title: "Counter"}, column{title: "Value", right: true})
	for _, n := range names {
		t.add(n, strconv.FormatUint(c[n], 10))
	}
	return t.write(w)
}

func renderStatus(w io.Writer, s api.Status, now time.Time) error {
	t := newTable(column{title: "Field"}, column{title: "Value"})
	t.add("Ready", yesNo(s.Ready))
	t.add("State", orDash(s.State))
	t.add("Reason", orDash(s.Reason))
	t.add("Role", orDash(s.Role))
	t.add("Version", orDash(s.Version))
	t.add("Uptime", since(now, s.Started))
	return t.write(w)
}
