package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const qosHub = minimalHub + `
qos:
  groups:
    branch-2m:
      rate: 2mbit
      burst: 15kb
      classes:
        - {name: voice, dscp: [ef], priority: true, rate: 500kbit}
        - {name: video, dscp: [af41, 36], rate: 800kbit, ceil: 2mbit}
        - {name: signalling, dscp: [cs3], rate: 100kbit}
        - {name: default}
    Branch-10M: {rate: 10mbit}
`

func TestQoSGood(t *testing.T) {
	c := mustParse(t, qosHub)
	want := QoSPolicy{Rate: 2_000_000, Burst: 15 * 1024, Classes: []QoSClass{
		{Name: "voice", DSCP: []DSCP{46}, Priority: true, Rate: 500_000},
		{Name: "video", DSCP: []DSCP{34, 36}, Rate: 800_000, Ceil: 2_000_000},
		{Name: "signalling", DSCP: []DSCP{24}, Rate: 100_000},
		{Name: "default"},
	}}
	got, ok := c.QoS.Group("branch-2m")
	if !ok {
		t.Fatalf("no group branch-2m in %v", c.QoS.Groups)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("branch-2m (-want +got):\n%s", diff)
	}
	// The file's keys are case-insensitive: lookups are too.
	if p, ok := c.QoS.Group("BRANCH-10m"); !ok || p.Rate != 10_000_000 {
		t.Errorf("Group(BRANCH-10m) = %v, %v", p, ok)
	}

	spoke := mustParse(t, minimalSpoke+`  group: branch-2m
qos:
  groups: {branch-2m: {rate: 2mbit}}
  egress: branch-2m
`)
	if spoke.NHRP.Group != "branch-2m" {
		t.Errorf("nhrp.group = %q", spoke.NHRP.Group)
	}
	if p, ok := spoke.QoS.EgressPolicy(); !ok || p.Rate != 2_000_000 {
		t.Errorf("egress by name = %v, %v", p, ok)
	}
	inline := mustParse(t, minimalSpoke+`qos: {egress: {rate: 1mbit, classes: [{name: voice, dscp: [ef], priority: true, rate: 200kbit}]}}
`)
	if p, ok := inline.QoS.EgressPolicy(); !ok || p.Rate != 1_000_000 || len(p.Classes) != 1 {
		t.Errorf("inline egress = %v, %v", p, ok)
	}
	if _, ok := mustParse(t, minimalSpoke).QoS.EgressPolicy(); ok {
		t.Error("egress policy without qos.egress")
	}
}

func TestQoSBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"rate syntax", minimalHub + "qos: {groups: {g: {rate: 2mbps, burst: 1q}}}\n", []string{
			`config: qos.groups.g.burst: "1q" is not a size like 15kb or 1500b (bytes: b, kb, mb)`,
			`config: qos.groups.g.rate: "2mbps" is not a rate like 2mbit or 500kbit (bit/s: bit, kbit, mbit, gbit)`,
		}},
		{"dscp syntax", minimalHub + "qos: {groups: {g: {rate: 1mbit, classes: [{name: a, dscp: [ef, 64, af99], rate: 1kbit}]}}}\n", []string{
			`config: qos.groups.g.classes[0].dscp[1]: "64" is not a DSCP (a name like ef, af41, cs3, default, or 0..63)`,
			`config: qos.groups.g.classes[0].dscp[2]: "af99" is not a DSCP (a name like ef, af41, cs3, default, or 0..63)`,
		}},
		{"no rate", minimalHub + "qos: {groups: {g: {burst: 10kb}}}\n", []string{
			"config: qos.groups.g.rate: required (the shaper's rate, like 2mbit)"}},
		{"bad group name", minimalHub + "qos: {groups: {\"a b\": {rate: 1mbit}}}\n", []string{
			"config: qos.groups.a b: nhrp: bad NHRP group: octet 1 is 0x20, want printable ASCII without space"}},
		{"classes over rate", minimalHub + `qos:
  groups:
    g:
      rate: 1mbit
      classes:
        - {name: voice, dscp: [ef], priority: true, rate: 600kbit, ceil: 1mbit}
        - {name: video, dscp: [af41, ef], rate: 600kbit, ceil: 500kbit}
        - {name: voice}
        - {name: bulk, rate: 2mbit}
        - {name: x, dscp: [cs1], priority: true}
`, []string{
			"config: qos.groups.g.classes[0].ceil: a priority class is policed at its rate and borrows nothing",
			`config: qos.groups.g.classes[1].dscp: ef is already in class "voice"`,
			"config: qos.groups.g.classes[1].ceil: 500kbit is below the class's rate 600kbit",
			`config: qos.groups.g.classes[2].name: "voice" names two classes`,
			"config: qos.groups.g.classes[3].dscp: a second class without dscp: only one default class",
			"config: qos.groups.g.classes[3].rate: 2mbit exceeds the policy's rate 1mbit",
			"config: qos.groups.g.classes[4].rate: required for a priority class (its policed maximum)",
			"config: qos.groups.g.classes: the classes' rates sum to 3200kbit, more than the policy's rate 1mbit",
		}},
		{"hub announces a group", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, group: g}
qos: {egress: {rate: 1mbit}}
`, []string{
			"config: nhrp.group: only a spoke announces a group (a hub applies qos.groups to its spokes')",
			"config: qos.egress: only a spoke shapes its upload toward its hubs",
		}},
		{"bad spoke group, unknown egress group", minimalSpoke + "  group: \"x y\"\nqos: {egress: nope}\n", []string{
			`config: nhrp.group: "x y": nhrp: bad NHRP group: octet 1 is 0x20, want printable ASCII without space`,
			`config: qos.egress.group: "nope" is not one of qos.groups ()`,
		}},
		{"egress both", minimalSpoke + "qos: {groups: {g: {rate: 1mbit}}, egress: {group: g, rate: 1mbit}}\n", []string{
			"config: qos.egress: set group or an inline policy (rate, burst, classes), not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			// Decode errors come in the order of the file's mapping.
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQoSDiffLive: qos keys and nhrp.group change on reload, named by the
// group in the key.
func TestQoSDiffLive(t *testing.T) {
	old := mustParse(t, qosHub)
	next := mustParse(t, strings.Replace(qosHub, "rate: 2mbit", "rate: 3mbit", 1))
	var got []string
	for _, c := range Diff(old, next) {
		got = append(got, c.String())
	}
	if diff := cmp.Diff([]string{"qos.groups.branch-2m.rate: 2mbit -> 3mbit (live)"}, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	gone := mustParse(t, minimalHub)
	n := 0
	for _, c := range Diff(old, gone) {
		if c.Disposition != Live {
			t.Errorf("%s is not live", c)
		}
		n++
	}
	if n == 0 {
		t.Error("removing qos.groups changes nothing")
	}
	sp := mustParse(t, minimalSpoke+"  group: a\n")
	sp2 := mustParse(t, minimalSpoke+"  group: b\n")
	if d := Diff(sp, sp2); len(d) != 1 || d[0].String() != "nhrp.group: a -> b (live)" {
		t.Errorf("nhrp.group diff = %v", d)
	}
	// The rendered file loads back.
	if d := Diff(old, mustParse(t, string(old.YAML()))); len(d) != 0 {
		t.Errorf("YAML round trip: %v\n%s", d, old.YAML())
	}
}
