package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// dur formats a duration the way Cisco's show commands do: hh:mm:ss below
// a day, then 1d02h, then 2w3d.
func dur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	switch {
	case d < day:
		h := d / time.Hour
		m := (d % time.Hour) / time.Minute
		s := (d % time.Minute) / time.Second
		return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	case d < week:
		return fmt.Sprintf("%dd%02dh", d/day, (d%day)/time.Hour)
	default:
		return fmt.Sprintf("%dw%dd", d/week, (d%week)/day)
	}
}

// since is the time elapsed from t to now, "never" for a zero t.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return dur(now.Sub(t))
}

// until is the time left from now to t, "-" for a zero t and "expired"
// once passed.
func until(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if !t.After(now) {
		return "expired"
	}
	return dur(t.Sub(now))
}

// addr prints an address or "-" when unset.
func addr(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// orDash prints s or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinOrDash[T ~string](vs []T) string {
	if len(vs) == 0 {
		return "-"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ",")
}

// titleCase upper-cases the first letter ("hub" -> "Hub").
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// addrPort prints an address and port or "-" when unset.
func addrPort(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}
