package apitest

import (
	"context"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// Views are the read-only views a Snapshot holds, as both an api.Source
// (the controller) and an *api.Client serve them.
type Views interface {
	Status(ctx context.Context) (api.Status, error)
	DMVPN(ctx context.Context) (api.DMVPN, error)
	Cache(ctx context.Context) ([]api.CacheEntry, error)
	NHS(ctx context.Context) ([]api.NHS, error)
	Shortcuts(ctx context.Context) ([]api.Shortcut, error)
	IPsec(ctx context.Context) ([]api.SA, error)
	BGP(ctx context.Context) (api.BGPSummary, error)
	Counters(ctx context.Context) (api.Counters, error)
	PeerDetails(ctx context.Context, addr netip.Addr) ([]api.PeerDetail, error)
	QoS(ctx context.Context, addr netip.Addr) ([]api.QoSPeer, error)
}

// Capture reads every view of v (the peer details and QoS of every peer)
// into a Snapshot, handing each view's error to check with its name
// ("status", "dmvpn", "cache", "nhs", "shortcuts", "ipsec", "bgp",
// "counters", "peers", "qos"). Now is left zero.
func Capture(ctx context.Context, v Views, check func(view string, err error)) Snapshot {
	var s Snapshot
	var err error
	s.Status, err = v.Status(ctx)
	check("status", err)
	s.DMVPN, err = v.DMVPN(ctx)
	check("dmvpn", err)
	s.Cache, err = v.Cache(ctx)
	check("cache", err)
	s.NHS, err = v.NHS(ctx)
	check("nhs", err)
	s.Shortcuts, err = v.Shortcuts(ctx)
	check("shortcuts", err)
	s.SAs, err = v.IPsec(ctx)
	check("ipsec", err)
	s.BGP, err = v.BGP(ctx)
	check("bgp", err)
	s.Counters, err = v.Counters(ctx)
	check("counters", err)
	s.Peers, err = v.PeerDetails(ctx, netip.Addr{})
	check("peers", err)
	s.QoS, err = v.QoS(ctx, netip.Addr{})
	check("qos", err)
	return s
}
