package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

func newShow(o *opts) *cobra.Command {
	show := group("show", "Show the daemon's state (tables, or JSON with --json)")
	show.PersistentFlags().BoolVar(&o.json, "json", false, "print JSON instead of a table")

	leaf := func(use, short string, run runE) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: run}
	}
	show.AddCommand(newShowRunningConfig(o))
	dmvpn := leaf("dmvpn", "Peers and NHS status, as Cisco's show dmvpn", showView(o, (*api.Client).DMVPN, renderDMVPN))
	dmvpn.AddCommand(newDMVPNDetail(o), newDMVPNPeer(o))
	show.AddCommand(dmvpn)

	nhrp := group("nhrp", "NHRP state")
	nhrp.AddCommand(leaf("cache", "The NHRP cache", showView(o, (*api.Client).Cache, renderCache)),
		leaf("nhs", "Next-hop servers and registration state", showView(o, (*api.Client).NHS, renderNHS)),
		leaf("shortcuts", "Installed shortcut routes", showView(o, (*api.Client).Shortcuts, renderShortcuts)))

	bgp := group("bgp", "BGP state")
	bgp.AddCommand(leaf("summary", "BGP neighbors", showView(o, (*api.Client).BGP, renderBGP)))

	show.AddCommand(newTopology(o), newShowQoS(o))
	show.AddCommand(nhrp, bgp, leaf("ipsec", "IPsec SAs per peer", showView(o, (*api.Client).IPsec, renderIPsec)),
		leaf("counters", "Protocol and dataplane counters", showView(o, (*api.Client).Counters,
			func(w io.Writer, c api.Counters, _ time.Time) error { return renderCounters(w, c) })))
	return show
}
