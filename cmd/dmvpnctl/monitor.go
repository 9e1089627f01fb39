package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// newMonitor is `dmvpnctl monitor`: the daemon's events, live.
func newMonitor(o *opts) *cobra.Command {
	var peer string
	var asJSON bool
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Stream registrations, shortcuts, SAs, BGP sessions and refusals live (Ctrl-C ends)",
		Long: "Stream the daemon's events live, one per line (--json: one api.Event object per line on stdout).\n" +
			"Once the daemon has accepted the subscription, \"dmvpnctl monitor: listening on SOCKET\" goes to\n" +
			"stderr: every event from then on is shown (or reported as events-lost).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var filter netip.Addr
			if peer != "" {
				a, err := netip.ParseAddr(peer)
				if err != nil {
					return fmt.Errorf("--peer: %w", err)
				}
				filter = a
			}
			enc := json.NewEncoder(o.out)
			// As tcpdump's "listening on": a script that starts the
			// monitor waits for this line on stderr to know that every
			// later event is shown.
			opened := func() { fmt.Fprintf(o.errOut, "dmvpnctl monitor: listening on %s\n", o.socket) }
			err := o.api().Events(cmd.Context(), filter, opened, func(ev api.Event) error {
				if asJSON {
					return enc.Encode(ev)
				}
				_, err := io.WriteString(o.out, eventLine(ev)+"\n")
				return err
			})
			if errors.Is(err, context.Canceled) || cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&peer, "peer", "", "only events about this peer (tunnel or NBMA address)")
	c.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return c
}

// eventLine renders an event as one log-like line.
func eventLine(ev api.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Format(time.RFC3339Nano))
	fmt.Fprintf(&b, " %-5s %s", strings.ToUpper(ev.Level), ev.Kind)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	if ev.PeerTunnel.IsValid() {
		kv("peer_tunnel", ev.PeerTunnel.String())
	}
	if ev.NBMA.IsValid() {
		kv("nbma", ev.NBMA.String())
	}
	if ev.Prefix.IsValid() {
		kv("prefix", ev.Prefix.String())
	}
	kv("state", ev.State)
	if ev.Reason != "" {
		kv("reason", fmt.Sprintf("%q", ev.Reason))
	}
	if ev.Count != 0 {
		kv("count", fmt.Sprint(ev.Count))
	}
	return b.String()
}
