package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/cmd/dmvpnctl/nhrpdecode"
	"github.com/dmvpnd/dmvpnd/cmd/internal/docgen"
	"github.com/dmvpnd/dmvpnd/cmd/internal/version"
	"github.com/dmvpnd/dmvpnd/controller/api"
)

// requestTimeout bounds one API call.
const requestTimeout = 10 * time.Second

// opts holds the flags shared by the commands.
type opts struct {
	env
	socket string
	json   bool
}

func (o *opts) api() *api.Client { return o.client(o.socket) }

func (o *opts) ctx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), requestTimeout)
}

// emit prints v as indented JSON when --json is set, else calls text.
func (o *opts) emit(v any, text func() error) error {
	if !o.json {
		return text()
	}
	enc := json.NewEncoder(o.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func init() {
	// Unambiguous abbreviations, as on a router: sh dmvpn, sh nhrp ca.
	cobra.EnablePrefixMatching = true
}

func newRoot(e env) *cobra.Command {
	o := &opts{env: e}
	root := &cobra.Command{
		Use:           "dmvpnctl",
		Short:         "Inspect and control dmvpnd",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version(),
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	root.SetVersionTemplate(version.Text("dmvpnctl"))
	root.SetOut(e.out)
	root.SetErr(e.errOut)
	def := os.Getenv("DMVPNCTL_SOCKET")
	if def == "" {
		def = api.DefaultSocket
	}
	root.PersistentFlags().StringVar(&o.socket, "socket", def, "dmvpnd control socket (env DMVPNCTL_SOCKET)")
	root.AddCommand(newShow(o), newClear(o), newReload(o), newStatus(o), newLogLevel(o), newNHRPTools(), newMonitor(o), newTechSupport(o))
	root.AddCommand(docgen.Command(root))
	return root
}

// group is a command that only holds subcommands; unlike cobra's default it
// fails on an unknown subcommand instead of printing help and exiting 0.
func group(use, short string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
}

// newNHRPTools is `dmvpnctl nhrp ...`: offline NHRP tools.
func newNHRPTools() *cobra.Command {
	c := group("nhrp", "Offline NHRP tools")
	c.AddCommand(nhrpdecode.NewCommand())
	return c
}
