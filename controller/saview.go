package controller

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

// refreshTimeout bounds the fresh listing a view asks charon for; past it
// the view shows the last listing.
const refreshTimeout = 2 * time.Second

// refresher is implemented by an IPsec side that can list its SAs on
// demand (ipsec.Manager): traffic counters move between its periodic
// resyncs.
type refresher interface {
	Refresh(ctx context.Context) error
}

// ipsecState returns the IPsec snapshot, refreshed first when the IPsec
// side can (a failed refresh is logged: the view shows the last listing).
// Never on the loop: it waits for charon.
func (c *Controller) ipsecState(ctx context.Context) ipsec.State {
	if r, ok := c.deps.IPsec.(refresher); ok {
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		err := r.Refresh(rctx)
		cancel()
		if err != nil {
			c.log.Debug("ipsec view: listing SAs failed, showing the last listing", zap.Error(err))
		}
	}
	return c.deps.IPsec.State()
}

// saStates are the API's names of the IPsec manager's statuses (also the
// labels of dmvpnd_ipsec_sas, in lower case), indexed by status.
var saStates = [...]api.SAState{
	ipsec.StatusDown:       api.SADown,
	ipsec.StatusConnecting: api.SAConnecting,
	ipsec.StatusUp:         api.SAEstablished,
}

func saState(s ipsec.Status) api.SAState {
	if s < 0 || int(s) >= len(saStates) {
		return api.SADown
	}
	return saStates[s]
}

// apiSA converts one wanted IPsec peer for the API.
func (c *Controller) apiSA(p ipsec.PeerState) api.SA {
	sa := api.SA{Name: p.Name, PeerNBMA: p.RemoteNBMA, Local: c.nbma, Remote: p.Observed.Addr(),
		Since: p.Since, Reason: p.Reason}
	if p.ClaimedNBMA.IsValid() {
		sa.PeerNBMA = p.ClaimedNBMA
	}
	sa.State = saState(p.Status)
	if p.NATRemote {
		sa.NATTPort = p.Observed.Port()
	}
	for _, s := range p.SAs {
		sa.IKESAs = append(sa.IKESAs, apiIKESA(s))
	}
	return sa
}

func apiIKESA(s ipsec.SAInfo) api.IKESA {
	out := api.IKESA{ID: s.UniqueID, State: s.State, Initiator: s.Initiator, Local: s.Local, Remote: s.Remote,
		RemoteID: s.RemoteID, EncrAlg: s.EncrAlg, EncrKeySize: s.EncrKeySize, IntegAlg: s.IntegAlg,
		PRFAlg: s.PRFAlg, DHGroup: s.DHGroup, Established: s.Established, RekeyAt: s.RekeyAt,
		Terminating: s.Terminating, Children: []api.ChildSA{}}
	for _, ch := range s.Children {
		out.Children = append(out.Children, api.ChildSA{Name: ch.Name, ID: ch.UniqueID, State: ch.State,
			Mode: ch.Mode, Protocol: ch.Protocol, Encap: ch.Encap, SPIIn: ch.SPIIn, SPIOut: ch.SPIOut,
			EncrAlg: ch.EncrAlg, EncrKeySize: ch.EncrKeySize, IntegAlg: ch.IntegAlg,
			Installed: ch.Installed, RekeyAt: ch.RekeyAt, Expires: ch.Expires,
			BytesIn: ch.BytesIn, BytesOut: ch.BytesOut, PacketsIn: ch.PacketsIn, PacketsOut: ch.PacketsOut,
			LocalTS: ch.LocalTS, RemoteTS: ch.RemoteTS})
	}
	return out
}
