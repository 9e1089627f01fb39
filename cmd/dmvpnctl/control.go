package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

func newClear(o *opts) *cobra.Command {
	clear := group("clear", "Clear dynamic state")
	nhrp := group("nhrp", "Clear NHRP state")
	nhrp.AddCommand(&cobra.Command{
		Use: "cache", Short: "Drop the dynamic NHRP cache entries", Args: cobra.NoArgs,
		RunE: clearCount(o, (*api.Client).ClearCache, "NHRP cache entries"),
	}, &cobra.Command{
		Use: "shortcuts", Short: "Remove the NHRP shortcut routes", Args: cobra.NoArgs,
		RunE: clearCount(o, (*api.Client).ClearShortcuts, "NHRP shortcuts"),
	})
	nhrp.AddCommand(newClearRegistration(o))
	clear.AddCommand(nhrp, newClearDMVPN(o))
	return clear
}

func newStatus(o *opts) *cobra.Command {
	var wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "status",
		Short: "Show readiness; with --wait, exit 0 once ready or 1 at the timeout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !wait {
				ctx, cancel := o.ctx(cmd)
				defer cancel()
				st, err := o.api().Status(ctx)
				if err != nil {
					return err
				}
				return o.emit(st, func() error { return renderStatus(o.out, st, o.now()) })
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, err := o.api().WaitReady(ctx, o.pollInterval)
			if err != nil {
				return fmt.Errorf("status: not ready after %s: %w", timeout, err)
			}
			return o.emit(st, func() error { return renderStatus(o.out, st, o.now()) })
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until the node is ready")
	c.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long --wait waits")
	c.Flags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return c
}

func newLogLevel(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:       "log-level [debug|info|warn|error]",
		Short:     "Show or change the daemon's log level at run time",
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"debug", "info", "warn", "error"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := o.ctx(cmd)
			defer cancel()
			var lvl string
			var err error
			if len(args) == 0 {
				lvl, err = o.api().LogLevel(ctx)
			} else {
				lvl, err = o.api().SetLogLevel(ctx, args[0])
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(o.out, "Log level: %s\n", lvl)
			return err
		},
	}
}
