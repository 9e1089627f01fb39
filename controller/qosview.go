package controller

import (
	"context"
	"fmt"
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
)

// QoS is the show qos view: every installed per-tunnel shaper with its
// classes' counters, read from the kernel off the loop; with addr valid
// only the peer whose tunnel or GRE destination it is (none is
// ErrNotFound). Without a QoS dependency it is ErrNotEnabled. A shaper a
// previous run left, whose peer has not registered again, is listed
// without a tunnel address.
func (c *Controller) QoS(ctx context.Context, addr netip.Addr) ([]api.QoSPeer, error) {
	if c.deps.QoS == nil {
		return nil, fmt.Errorf("per-tunnel QoS: %w", api.ErrNotEnabled)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stats, err := c.deps.QoS.QoSStats()
	if err != nil {
		return nil, fmt.Errorf("controller: qos counters: %w", err)
	}
	cfg, tunnels := c.config(), c.qosTunnelMap()
	out := []api.QoSPeer{}
	for _, s := range stats {
		p := qosPeerView(cfg, tunnels[s.Dst], s)
		if !addr.IsValid() || p.NBMA == addr || p.Tunnel == addr {
			out = append(out, p)
		}
	}
	if addr.IsValid() && len(out) == 0 {
		return nil, fmt.Errorf("no per-tunnel QoS toward %s: %w", addr, api.ErrNotFound)
	}
	return out, nil
}

func (c *Controller) qosTunnelMap() map[netip.Addr]netip.Addr {
	if m := c.qosTunnels.Load(); m != nil {
		return *m
	}
	return nil
}

// qosPeerView renders one target's counters with its policy's
// configuration (DSCP names, priority); the kernel's default class takes
// the name of the configured default class, if there is one.
func qosPeerView(cfg *config.Config, tunnel netip.Addr, s QoSTargetStats) api.QoSPeer {
	p := api.QoSPeer{Tunnel: tunnel, NBMA: s.Dst, Group: s.Policy, Ifindex: s.Ifindex,
		Shaper: apiQoSClass(s.Shaper), Classes: make([]api.QoSClass, 0, len(s.Classes))}
	byName := map[string]config.QoSClass{}
	defName := ""
	if pol, ok := qosConfigPolicy(cfg, s.Policy); ok {
		for _, cl := range pol.Classes {
			byName[cl.Name] = cl
			if len(cl.DSCP) == 0 {
				defName = cl.Name
			}
		}
	}
	for _, k := range s.Classes {
		v := apiQoSClass(k)
		if k.Name == "default" && defName != "" {
			v.Name = defName
		}
		if cl, ok := byName[v.Name]; ok {
			v.Priority = cl.Priority
			for _, d := range cl.DSCP {
				v.DSCP = append(v.DSCP, d.String())
			}
		}
		p.Classes = append(p.Classes, v)
	}
	return p
}

// qosConfigPolicy is the configured policy a target's policy name refers
// to: a qos.groups key or the inline qos.egress.
func qosConfigPolicy(cfg *config.Config, name string) (config.QoSPolicy, bool) {
	if name == qosEgressPolicy {
		return cfg.QoS.EgressPolicy()
	}
	return cfg.QoS.Group(name)
}

func apiQoSClass(k QoSClassStats) api.QoSClass {
	return api.QoSClass{Name: k.Name, Rate: k.Rate, Ceil: k.Ceil, Bytes: k.Bytes, Packets: k.Packets,
		Drops: k.Drops, Overlimits: k.Overlimits, Backlog: k.Backlog, Qlen: k.Qlen}
}

// qosSamples are the per-class counters the metrics export at scrape
// time: one set per installed shaper, so only peers with a policy. An
// unreadable kernel exports none (the scrape goes on).
func (c *Controller) qosSamples() []metrics.QoSSample {
	stats, err := c.deps.QoS.QoSStats()
	if err != nil {
		c.log.Debug("reading the per-tunnel QoS counters", zap.Error(err))
		return nil
	}
	cfg, tunnels := c.config(), c.qosTunnelMap()
	var out []metrics.QoSSample
	for _, s := range stats {
		p := qosPeerView(cfg, tunnels[s.Dst], s)
		peer := p.Tunnel
		if !peer.IsValid() {
			peer = p.NBMA
		}
		for _, k := range p.Classes {
			out = append(out, metrics.QoSSample{Peer: peer.String(), Group: p.Group, Class: k.Name,
				Bytes: k.Bytes, Packets: k.Packets, Drops: k.Drops})
		}
	}
	return out
}
