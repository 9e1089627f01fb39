package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// exitRestartNeeded is the exit status of a reload (or dry run) that left
// changes waiting for a restart of dmvpnd.
const exitRestartNeeded = 3

// exitStatus is an error that sets dmvpnctl's exit status.
type exitStatus struct {
	code int
	msg  string
}

func (e *exitStatus) Error() string { return e.msg }

func newReload(o *opts) *cobra.Command {
	var dryRun, wait bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "reload [--dry-run [FILE]]",
		Short: "Re-read the configuration file and apply it; list every changed key",
		Long: "Re-read the configuration file and apply every change a reload can apply;\n" +
			"changes that need a restart keep their running value. Every changed key is\n" +
			"listed with its result (secrets as \"changed\").\n\n" +
			"Exit status: 0 when every change was applied, 3 when some wait for a\n" +
			"restart of dmvpnd (systemctl reload then fails), 1 when the file was\n" +
			"rejected (nothing changed).\n\n" +
			"--dry-run lists the changes without applying them, of FILE if given (the\n" +
			"daemon checks it against the running configuration), else of the\n" +
			"daemon's file; same exit status. --wait also waits until the node is\n" +
			"ready again (re-registered after an NHRP change).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.ReloadRequest{DryRun: dryRun}
			if len(args) == 1 {
				if !dryRun {
					return fmt.Errorf("reload: a FILE is only checked with --dry-run; a reload reads the daemon's file")
				}
				b, err := os.ReadFile(args[0])
				if err != nil {
					return fmt.Errorf("reload: %w", err)
				}
				req.Config = string(b)
			}
			ctx, cancel := o.ctx(cmd)
			defer cancel()
			res, err := o.api().Reload(ctx, req)
			if err != nil {
				if dryRun {
					return fmt.Errorf("dry run: the file would be rejected: %w", err)
				}
				return fmt.Errorf("reload rejected, the running configuration stays: %w", err)
			}
			if err := o.emit(res, func() error { return renderReload(o.out, res) }); err != nil {
				return err
			}
			if wait && !dryRun {
				wctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				if _, err := o.api().WaitReady(wctx, o.pollInterval); err != nil {
					return fmt.Errorf("reload: not ready after %s: %w", timeout, err)
				}
			}
			if !res.Complete() {
				return &exitStatus{code: exitRestartNeeded, msg: "some changes need a restart of dmvpnd (systemctl restart dmvpnd)"}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list the changes without applying them")
	c.Flags().BoolVar(&wait, "wait", false, "after applying, wait until the node is ready again")
	c.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long --wait waits")
	c.Flags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return c
}

// renderReload prints one line per changed key with its result.
func renderReload(w io.Writer, r api.ReloadResult) error {
	applied, verb := "applied", "Configuration reloaded"
	if r.DryRun {
		applied, verb = "would apply", "Dry run"
	}
	if len(r.Changes) == 0 {
		_, err := fmt.Fprintf(w, "%s: no changes\n", verb)
		return err
	}
	t := newTable(column{title: "Key"}, column{title: "Change"}, column{title: "Result"})
	restart := 0
	for _, c := range r.Changes {
		result := applied
		if c.Disposition != api.DispositionLive {
			result = "needs restart: " + c.Reason
			restart++
		}
		t.add(c.Key, changeText(c), result)
	}
	if _, err := fmt.Fprintf(w, "%s: %d changes, %d need a restart\n\n", verb, len(r.Changes), restart); err != nil {
		return err
	}
	return t.write(w)
}

func changeText(c api.ConfigChange) string {
	if c.Secret {
		return "changed"
	}
	none := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	return none(c.Old) + " -> " + none(c.New)
}

func newShowRunningConfig(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:   "running-config",
		Short: "The configuration in effect, defaults filled in, secrets redacted",
		Long: "The configuration in effect, as a file would spell it: every key with its\n" +
			"effective value (defaults filled in), secrets redacted. Changes of the last\n" +
			"file loaded that wait for a restart are listed as comments at the end.",
		Args: cobra.NoArgs,
		RunE: showView(o, (*api.Client).RunningConfig,
			func(w io.Writer, rc api.RunningConfig, _ time.Time) error { return renderRunningConfig(w, rc) }),
	}
}

func renderRunningConfig(w io.Writer, rc api.RunningConfig) error {
	if _, err := io.WriteString(w, rc.YAML); err != nil {
		return err
	}
	if len(rc.Pending) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "# Waiting for a restart of dmvpnd:\n"); err != nil {
		return err
	}
	for _, c := range rc.Pending {
		if _, err := fmt.Fprintf(w, "#   %s: %s (%s)\n", c.Key, changeText(c), c.Reason); err != nil {
			return err
		}
	}
	return nil
}
