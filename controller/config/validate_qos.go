package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// validateQoS checks nhrp.group and the qos section: every name a valid
// NHRP group, every policy's classes consistent with its rate.
func (c *Config) validateQoS(v *validator) {
	if g := c.NHRP.Group; g != "" {
		if err := nhrp.ValidGroup(g); err != nil {
			v.add("nhrp.group", "%q: %v", g, err)
		}
		if c.NHRP.Role == RoleHub {
			v.add("nhrp.group", "only a spoke announces a group (a hub applies qos.groups to its spokes')")
		}
	}
	q := c.QoS
	for _, name := range slices.Sorted(maps.Keys(q.Groups)) {
		path := "qos.groups." + name
		if err := nhrp.ValidGroup(name); err != nil {
			v.add(path, "%v", err)
		}
		validatePolicy(v, path, q.Groups[name])
	}
	e := q.Egress
	switch {
	case e.IsZero():
	case c.NHRP.Role == RoleHub:
		v.add("qos.egress", "only a spoke shapes its upload toward its hubs")
	case e.Group != "":
		if e.Rate != 0 || e.Burst != 0 || len(e.Classes) > 0 {
			v.add("qos.egress", "set group or an inline policy (rate, burst, classes), not both")
		} else if _, ok := q.Group(e.Group); !ok {
			v.add("qos.egress.group", "%q is not one of qos.groups (%s)", e.Group, strings.Join(slices.Sorted(maps.Keys(q.Groups)), ", "))
		}
	default:
		validatePolicy(v, "qos.egress", QoSPolicy{Rate: e.Rate, Burst: e.Burst, Classes: e.Classes})
	}
}

// validatePolicy checks one policy: a rate; classes with unique names,
// each DSCP in one class, at most one default class; a priority class
// with a policed rate and no ceil; guaranteed classes with rate <= ceil <=
// the policy's rate; guaranteed and priority rates summing to at most the
// policy's rate.
func validatePolicy(v *validator, path string, p QoSPolicy) {
	if p.Rate == 0 {
		v.add(path+".rate", "required (the shaper's rate, like 2mbit)")
		return
	}
	names := map[string]bool{}
	dscps := map[DSCP]string{}
	var sum uint64
	defaults := 0
	for i, cl := range p.Classes {
		cp := fmt.Sprintf("%s.classes[%d]", path, i)
		switch {
		case cl.Name == "":
			v.add(cp+".name", "required")
		case names[cl.Name]:
			v.add(cp+".name", "%q names two classes", cl.Name)
		}
		names[cl.Name] = true
		if len(cl.DSCP) == 0 {
			defaults++
			if defaults == 2 {
				v.add(cp+".dscp", "a second class without dscp: only one default class")
			}
			if cl.Priority {
				v.add(cp+".priority", "the default class (no dscp) cannot be strict priority")
			}
		}
		for _, d := range cl.DSCP {
			if other, ok := dscps[d]; ok {
				v.add(cp+".dscp", "%s is already in class %q", d, other)
			}
			dscps[d] = cl.Name
		}
		switch {
		case cl.Priority && cl.Rate == 0:
			v.add(cp+".rate", "required for a priority class (its policed maximum)")
		case cl.Priority && cl.Ceil != 0:
			v.add(cp+".ceil", "a priority class is policed at its rate and borrows nothing")
		case !cl.Priority && cl.Ceil != 0 && cl.Ceil < cl.Rate:
			v.add(cp+".ceil", "%s is below the class's rate %s", cl.Ceil, cl.Rate)
		}
		if cl.Rate > p.Rate {
			v.add(cp+".rate", "%s exceeds the policy's rate %s", cl.Rate, p.Rate)
		}
		if cl.Ceil > p.Rate {
			v.add(cp+".ceil", "%s exceeds the policy's rate %s", cl.Ceil, p.Rate)
		}
		sum += uint64(cl.Rate)
	}
	if sum > uint64(p.Rate) {
		v.add(path+".classes", "the classes' rates sum to %s, more than the policy's rate %s", Rate(sum), p.Rate)
	}
}
