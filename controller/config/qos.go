package config

import (
	"fmt"
	"strconv"
	"strings"
)

// QoS configures per-tunnel QoS (Cisco's Per-Tunnel QoS for DMVPN). A hub
// shapes the traffic toward each registered spoke by the policy of the
// NHRP group the spoke announces (nhrp.group on the spoke); a spoke does
// the same toward the peers of its shortcuts and shapes its own upload
// toward its hubs by Egress. What is installed, and how, is the kernel's
// business: this section only describes the policies.
type QoS struct {
	// Groups are the policies, by NHRP group name. Names are compared
	// without regard to case (the file's keys are case-insensitive); a
	// peer announcing a name not listed here gets no policy (counted).
	Groups map[string]QoSPolicy `mapstructure:"groups"`
	// Egress is a spoke's own upload shaping toward its NHSs: a group name
	// from Groups, or a policy of the same shape.
	Egress QoSEgress `mapstructure:"egress"`
}

// QoSPolicy is one group's policy: a shaper of Rate (bursts of Burst
// bytes) over classes selected by DSCP.
type QoSPolicy struct {
	// Rate is the shaper's rate (required), like "2mbit".
	Rate Rate `mapstructure:"rate"`
	// Burst is the shaper's bucket, like "15kb" (default: what the kernel
	// side picks for Rate).
	Burst Size `mapstructure:"burst"`
	// Classes split the shaped rate. Traffic no class selects goes to the
	// class without dscp (the default class, fair queueing), or to an
	// implicit one when there is none.
	Classes []QoSClass `mapstructure:"classes"`
}

// QoSClass is one traffic class of a policy.
type QoSClass struct {
	// Name labels the class (counters, dmvpnctl); unique in its policy.
	Name string `mapstructure:"name"`
	// DSCP selects the class's packets by the inner DSCP (copied to the
	// outer header); names (ef, af41, cs3, default) or numbers 0..63.
	// Empty: the default class.
	DSCP []DSCP `mapstructure:"dscp"`
	// Priority makes the class strict priority, policed at Rate.
	Priority bool `mapstructure:"priority"`
	// Rate is the priority class's policed maximum, or the guaranteed
	// share of any other class.
	Rate Rate `mapstructure:"rate"`
	// Ceil is what a non-priority class may borrow up to (default: the
	// policy's rate).
	Ceil Rate `mapstructure:"ceil"`
}

// QoSEgress is a spoke's upload policy: either Group names one of
// qos.groups, or Rate/Burst/Classes describe one inline. In the file,
// "egress: NAME" is short for "egress: {group: NAME}".
type QoSEgress struct {
	Group   string     `mapstructure:"group"`
	Rate    Rate       `mapstructure:"rate"`
	Burst   Size       `mapstructure:"burst"`
	Classes []QoSClass `mapstructure:"classes"`
}

// IsZero reports whether no egress policy is configured.
func (e QoSEgress) IsZero() bool {
	return e.Group == "" && e.Rate == 0 && e.Burst == 0 && len(e.Classes) == 0
}

// EgressPolicy returns the egress policy: the named group's or the inline one;
// ok is false when none is configured or the group is unknown.
func (q QoS) EgressPolicy() (QoSPolicy, bool) {
	e := q.Egress
	if e.Group != "" {
		p, ok := q.Group(e.Group)
		return p, ok
	}
	if e.IsZero() {
		return QoSPolicy{}, false
	}
	return QoSPolicy{Rate: e.Rate, Burst: e.Burst, Classes: e.Classes}, true
}

// Group returns the policy of the group name, compared without regard to
// case.
func (q QoS) Group(name string) (QoSPolicy, bool) {
	if p, ok := q.Groups[name]; ok {
		return p, true
	}
	p, ok := q.Groups[strings.ToLower(name)]
	return p, ok
}

// Rate is a rate in bit/s. The file spells it as tc does: a number of
// bit/s, or with a unit bit, kbit, mbit, gbit (powers of 1000).
type Rate uint64

var rateUnits = []unit{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// ParseRate parses "2mbit", "500kbit", "64000".
func ParseRate(s string) (Rate, error) {
	v, err := parseUnits(s, "rate", rateUnits, "like 2mbit or 500kbit (bit/s: bit, kbit, mbit, gbit)")
	return Rate(v), err
}

func (r Rate) String() string { return formatUnits(uint64(r), rateUnits) }

// Size is a size in bytes: a number of bytes or with a unit b, kb, mb
// (powers of 1024, as tc).
type Size uint32

var sizeUnits = []unit{{"mb", 1 << 20}, {"kb", 1 << 10}, {"b", 1}}

// ParseSize parses "15kb", "1500b", "1500".
func ParseSize(s string) (Size, error) {
	v, err := parseUnits(s, "size", sizeUnits, "like 15kb or 1500b (bytes: b, kb, mb)")
	if err != nil {
		return 0, err
	}
	if v > 1<<32-1 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(v), nil
}

func (z Size) String() string { return formatUnits(uint64(z), sizeUnits) }

// unit is a suffix of a rate or size and what it multiplies by.
type unit struct {
	suffix string
	mult   uint64
}

// formatUnits spells v with the largest of units (largest first, the last
// one 1) that divides it.
func formatUnits(v uint64, units []unit) string {
	for _, u := range units {
		if v != 0 && v%u.mult == 0 {
			return strconv.FormatUint(v/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(v, 10) + units[len(units)-1].suffix
}

func parseUnits(s, what string, units []unit, like string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := uint64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("%q is not a %s %s", s, what, like)
	}
	if n > (1<<64-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// DSCP is a Differentiated Services code point, 0..63.
type DSCP uint8

// dscpNames are the RFC 2474/2597/3246 code point names.
var dscpNames = map[string]DSCP{
	"default": 0, "be": 0, "cs0": 0, "cs1": 8, "cs2": 16, "cs3": 24, "cs4": 32, "cs5": 40, "cs6": 48, "cs7": 56,
	"af11": 10, "af12": 12, "af13": 14, "af21": 18, "af22": 20, "af23": 22,
	"af31": 26, "af32": 28, "af33": 30, "af41": 34, "af42": 36, "af43": 38,
	"ef": 46, "voice-admit": 44,
}

// ParseDSCP parses a code point name (ef, af41, cs3, default) or a number
// 0..63.
func ParseDSCP(s string) (DSCP, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if d, ok := dscpNames[t]; ok {
		return d, nil
	}
	n, err := strconv.ParseUint(t, 0, 8)
	if err != nil || n > 63 {
		return 0, fmt.Errorf("%q is not a DSCP (a name like ef, af41, cs3, default, or 0..63)", s)
	}
	return DSCP(n), nil
}

func (d DSCP) String() string {
	best := ""
	for name, v := range dscpNames {
		if v == d && name != "be" && name != "cs0" && (best == "" || name < best) {
			best = name
		}
	}
	if best != "" {
		return best
	}
	return strconv.Itoa(int(d))
}
