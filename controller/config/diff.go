package config

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// Disposition is what a reload does with one changed key.
type Disposition string

// Dispositions.
const (
	// Live: a reload applies the change.
	Live Disposition = "live"
	// Restart: the change takes effect only when dmvpnd restarts; a reload
	// keeps the running value and reports the key.
	Restart Disposition = "restart"
)

// Change is one changed leaf key between two configurations.
type Change struct {
	// Key is the dotted key as in Keys(), with the index of a list of
	// mappings: "nhrp.holding_time", "nhrp.nhs[1].nbma".
	Key string
	// Old and New are the values as the file spells them; empty when the
	// key is unset on that side (a list element added or removed). For a
	// secret both are empty: secrets are never printed.
	Old, New string
	// Secret: the value is a secret; only the fact that it changed shows.
	Secret      bool
	Disposition Disposition
	// Reason says why a Restart change cannot be applied live.
	Reason string
}

// String renders the change on one line, secrets as "changed":
//
//	nhrp.holding_time: 7200s -> 600s (live)
//	tunnel.name: gre1 -> gre2 (restart: the tunnel interface is created at start)
func (c Change) String() string {
	s := c.Key + ": " + c.Values()
	if c.Disposition == Restart {
		return s + " (restart: " + c.Reason + ")"
	}
	return s + " (" + string(c.Disposition) + ")"
}

// Values renders "old -> new", "changed" for a secret.
func (c Change) Values() string {
	if c.Secret {
		return "changed"
	}
	return orNone(c.Old) + " -> " + orNone(c.New)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Diff lists every leaf key whose value differs between old and next, in
// schema order, each with its disposition. It is the one place that decides
// what a reload changes and what it can apply.
func Diff(old, next *Config) []Change {
	var out []Change
	walkPair(reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), "", func(key string, a, b reflect.Value) {
		o, n := old.leaf(key, a), next.leaf(key, b)
		if o.cmp == n.cmp && o.present == n.present && o.sec.Equal(n.sec) {
			return
		}
		c := Change{Key: key, Old: o.value, New: n.value, Secret: o.secret || n.secret}
		if c.Secret {
			c.Old, c.New = "", ""
		} else if c.Old == c.New {
			c.New += " (new content)"
		}
		c.Disposition, c.Reason = disposition(pattern(key), old, next)
		out = append(out, c)
	})
	return out
}

// disposition decides whether a reload applies a change to the key (in
// Keys() form) from old to next, and if not, why.
func disposition(key string, old, next *Config) (Disposition, string) {
	for _, s := range []struct {
		prefix     string
		was, is    bool
		enabledKey string
	}{
		{"ipsec.", old.IPsec.Enabled, next.IPsec.Enabled, "ipsec.enabled"},
		{"bgp.", old.BGP.Enabled, next.BGP.Enabled, "bgp.enabled"},
	} {
		if !strings.HasPrefix(key, s.prefix) || key == s.enabledKey {
			continue
		}
		switch {
		case !s.was && !s.is:
			return Live, "" // the section is off: nothing runs that uses it
		case s.was != s.is:
			return Restart, "follows " + s.enabledKey
		}
	}
	if r := RestartReason(key); r != "" {
		return Restart, r
	}
	return Live, ""
}

// RestartReason says why a key (Keys() form, or a list of mappings such as
// "bgp.neighbors[]") cannot change without a restart; "" when a reload
// applies it. deploy/README.md documents the same split (a test checks).
func RestartReason(key string) string {
	switch {
	case key == "tunnel.name":
		return "the tunnel interface is created at start"
	case key == "tunnel.local_nbma" || key == "tunnel.underlay_device":
		return "the NBMA address is bound at start (GRE, NHRP, IPsec)"
	case key == "tunnel.address":
		return "NHRP, BGP and IPsec identities derive from the tunnel address at start"
	case key == "nhrp.role":
		return "a hub and a spoke run different components"
	case key == "ipsec.enabled":
		return "the GRE guard and the NHRP trust model are set at start"
	case key == "ipsec.tunnel_source_binding":
		return "the GRE guard's rules are installed at start"
	case key == "ipsec.nat_alias_prefix":
		return "NAT aliases are handed out from it while SAs use them"
	case key == "ipsec.vici_socket":
		return "charon's socket is dialled at start"
	case key == "ipsec.auth.method" || key == "ipsec.auth.bind_tunnel_address":
		return "IKE identities and the NHRP address binding are set at start"
	case strings.HasPrefix(key, "nhrp.multicast."):
		return "the multicast capture and its targets are set up at start"
	case key == "bgp.enabled":
		return "the BGP speaker is started, or not, at start"
	case key == "bgp.asn":
		return "the local AS is in every OPEN and set when the BGP speaker starts"
	case key == "bgp.router_id":
		return "the BGP identifier is set when the BGP speaker starts"
	case key == "bgp.listen":
		return "the BGP listener is opened at start"
	case key == "bgp.grpc_listen" || key == "bgp.grpc_write":
		return "GoBGP's API server starts with the BGP speaker"
	case key == "bgp.hub_mode" || key == "bgp.dynamic.asn":
		return "the export policy and the spokes' peer group (iBGP reflection or eBGP) are set at start"
	case key == "bgp.dynamic.prefix":
		return "the spokes' dynamic range and its peer group are set at start"
	case strings.HasPrefix(key, "bgp.graceful_restart."):
		return "graceful restart is in every OPEN and set when the BGP speaker starts"
	case strings.HasPrefix(key, "control."):
		return "the control socket is opened at start"
	case key == "metrics.listen":
		return "the metrics listener is opened at start"
	case key == "log.format":
		return "the logger is built at start"
	}
	return ""
}

// pattern turns "nhrp.nhs[1].nbma" into the Keys() form "nhrp.nhs[].nbma"
// and "qos.groups.NAME.rate" into "qos.groups.*.rate".
func pattern(key string) string {
	if rest, ok := strings.CutPrefix(key, "qos.groups."); ok {
		if _, field, ok := strings.Cut(rest, "."); ok {
			key = "qos.groups.*." + field
		}
	}
	return rewriteIndices(key, func(string) string { return "[]" })
}

// leaf is one leaf value of a configuration. Diff compares cmp (the value,
// or a file name with its content digest) and sec (a secret, compared in
// constant time).
type leaf struct {
	value, cmp      string
	sec             ipsec.Secret
	secret, present bool
}

// leaf describes v, the value of key in c; v is invalid when the key is
// absent (an element beyond the end of a list).
func (c *Config) leaf(key string, v reflect.Value) leaf {
	if !v.IsValid() {
		return leaf{}
	}
	l := leaf{present: true}
	if s, ok := v.Interface().(ipsec.Secret); ok {
		l.secret, l.sec = true, s
		return l
	}
	l.value = render(v)
	l.cmp = l.value
	if d, ok := c.Files.digests()[key]; ok && l.value != "" {
		l.cmp += "\x00" + d
	}
	return l
}

// walkPair calls f for every leaf of the structs a and b (either may be
// invalid: absent) in schema order, with its dotted key. Lists of mappings
// are walked element by element up to the longer one.
func walkPair(a, b reflect.Value, prefix string, f func(key string, a, b reflect.Value)) {
	var t reflect.Type
	if a.IsValid() {
		t = a.Type()
	} else {
		t = b.Type()
	}
	field := func(v reflect.Value, i int) reflect.Value {
		if !v.IsValid() {
			return v
		}
		return v.Field(i)
	}
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := joinPath(prefix, tag)
		fa, fb := field(a, i), field(b, i)
		ft := t.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct && !leafTypes[ft]:
			walkPair(fa, fb, key, f)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !leafTypes[ft.Elem()]:
			n := max(length(fa), length(fb))
			for j := range n {
				walkPair(index(fa, j), index(fb, j), fmt.Sprintf("%s[%d]", key, j), f)
			}
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			for _, name := range mapKeys(fa, fb) {
				walkPair(mapIndex(fa, name), mapIndex(fb, name), key+"."+name, f)
			}
		default:
			f(key, fa, fb)
		}
	}
}

// mapKeys returns the union of the string keys of the maps a and b
// (either may be invalid), sorted.
func mapKeys(a, b reflect.Value) []string {
	seen := map[string]bool{}
	for _, v := range []reflect.Value{a, b} {
		if v.IsValid() {
			for _, k := range v.MapKeys() {
				seen[k.String()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func mapIndex(v reflect.Value, name string) reflect.Value {
	if !v.IsValid() {
		return v
	}
	return v.MapIndex(reflect.ValueOf(name))
}

func length(v reflect.Value) int {
	if !v.IsValid() {
		return 0
	}
	return v.Len()
}

func index(v reflect.Value, i int) reflect.Value {
	if !v.IsValid() || i >= v.Len() {
		return reflect.Value{}
	}
	return v.Index(i)
}

// render spells a leaf value as the file would.
func render(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case netip.Addr:
		if !x.IsValid() {
			return ""
		}
		return x.String()
	case netip.Prefix:
		if !x.IsValid() {
			return ""
		}
		return x.String()
	case netip.AddrPort:
		if !x.IsValid() {
			return ""
		}
		return x.String()
	case time.Duration:
		if x%time.Second == 0 {
			return strconv.FormatInt(int64(x/time.Second), 10) + "s"
		}
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case fmt.Stringer:
		return x.String()
	}
	switch v.Kind() {
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.String:
		return v.String()
	}
	return fmt.Sprint(v.Interface())
}
