package main

import (
	"github.com/spf13/cobra"
)

func newShow(o *opts) *cobra.Command {
	show := group("show", "Show the daemon's state (tables, or JSON with --json)")
	show.PersistentFlags().BoolVar(&o.json, "json", false, "print JSON instead of a table")

	leaf := func(use, short string, run func(cmd *cobra.Command) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd) }}
	}
	show.AddCommand(newShowRunningConfig(o))
	dmvpn := leaf("dmvpn", "Peers and NHS status, as Cisco's show dmvpn", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		d, err := o.api().DMVPN(ctx)
		if err != nil {
			return err
		}
		return o.emit(d, func() error { return renderDMVPN(o.out, d, o.now()) })
	})
	dmvpn.AddCommand(newDMVPNDetail(o), newDMVPNPeer(o))
	show.AddCommand(dmvpn)

	nhrp := group("nhrp", "NHRP state")
	nhrp.AddCommand(leaf("cache", "The NHRP cache", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		c, err := o.api().Cache(ctx)
		if err != nil {
			return err
		}
		return o.emit(c, func() error { return renderCache(o.out, c, o.now()) })
	}), leaf("nhs", "Next-hop servers and registration state", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		n, err := o.api().NHS(ctx)
		if err != nil {
			return err
		}
		return o.emit(n, func() error { return renderNHS(o.out, n, o.now()) })
	}), leaf("shortcuts", "Installed shortcut routes", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		s, err := o.api().Shortcuts(ctx)
		if err != nil {
			return err
		}
		return o.emit(s, func() error { return renderShortcuts(o.out, s, o.now()) })
	}))

	bgp := group("bgp", "BGP state")
	bgp.AddCommand(leaf("summary", "BGP neighbors", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		s, err := o.api().BGP(ctx)
		if err != nil {
			return err
		}
		return o.emit(s, func() error { return renderBGP(o.out, s, o.now()) })
	}))

	show.AddCommand(newTopology(o))
	show.AddCommand(nhrp, bgp, leaf("ipsec", "IPsec SAs per peer", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		s, err := o.api().IPsec(ctx)
		if err != nil {
			return err
		}
		return o.emit(s, func() error { return renderIPsec(o.out, s, o.now()) })
	}), leaf("counters", "Protocol and dataplane counters", func(cmd *cobra.Command) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		c, err := o.api().Counters(ctx)
		if err != nil {
			return err
		}
		return o.emit(c, func() error { return renderCounters(o.out, c) })
	}))
	return show
}
