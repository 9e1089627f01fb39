package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// runE is a cobra command body.
type runE = func(cmd *cobra.Command, args []string) error

// showView is the body of a command that prints one view of the daemon:
// fetch reads it (an api.Client method), render draws it as a table, or
// --json prints it as JSON.
func showView[T any](o *opts, fetch func(*api.Client, context.Context) (T, error), render func(io.Writer, T, time.Time) error) runE {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		v, err := fetch(o.api(), ctx)
		if err != nil {
			return err
		}
		return o.emit(v, func() error { return render(o.out, v, o.now()) })
	}
}

// clearCount is the body of a command that clears state and says how much:
// "Cleared <n> <what>".
func clearCount(o *opts, clear func(*api.Client, context.Context) (int, error), what string) runE {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		n, err := clear(o.api(), ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.out, "Cleared %d %s\n", n, what)
		return err
	}
}

// withAddr is the body of a command whose one argument is an address.
func withAddr(o *opts, run func(ctx context.Context, a netip.Addr) error) runE {
	return func(cmd *cobra.Command, args []string) error {
		a, err := parseAddr(args[0])
		if err != nil {
			return err
		}
		ctx, cancel := o.ctx(cmd)
		defer cancel()
		return run(ctx, a)
	}
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address", s)
	}
	return a, nil
}
