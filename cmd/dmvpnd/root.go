package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmvpnd/dmvpnd/cmd/internal/docgen"
	"github.com/dmvpnd/dmvpnd/cmd/internal/version"
	"github.com/dmvpnd/dmvpnd/controller/config"
)

// Exit statuses. exitConfig is listed in the unit's RestartPreventExitStatus
// so that systemd does not restart a daemon whose file is invalid.
const (
	exitOK      = 0
	exitFailure = 1
	exitConfig  = 2
)

// DefaultConfig is the configuration file used without --config.
const DefaultConfig = "/etc/dmvpnd/dmvpnd.yaml"

// app is the daemon's outside world, injected for tests.
type app struct {
	stdout, stderr io.Writer
	// load reads and validates a configuration file, secret files included.
	load      func(path string) (*config.Config, error)
	newDaemon Factory
	// notify sends one sd_notify state (READY=1, STATUS=..., WATCHDOG=1).
	notify func(state string)
	// watchdog returns systemd's watchdog interval, 0 when disabled.
	watchdog func() (time.Duration, error)
	// signals delivers SIGTERM, SIGINT and SIGHUP.
	signals <-chan os.Signal
	now     func() time.Time
	// thpErr is why transparent huge pages could not be turned off for
	// the process (disableTHP), logged at start; nil when they are off.
	thpErr error
	// procs is the number of processors running Go code (limitProcs),
	// procsDefault whether it is dmvpnd's default rather than the
	// environment's GOMAXPROCS; logged at start.
	procs        int
	procsDefault bool

	// metricsAddr is the bound metrics address once listening (tests).
	metricsAddr string
}

// loadConfig is config.Load plus what the configuration refers to on this
// host: the secret files (PSK, certificates) and the control socket group.
func loadConfig(path string) (*config.Config, error) { return onHost(config.Load(path)) }

// parseConfig is loadConfig for a file's content (a dry run).
func parseConfig(data []byte) (*config.Config, error) { return onHost(config.Parse(data)) }

// onHost reads the secret files of a loaded configuration and checks its
// control socket group.
func onHost(c *config.Config, err error) (*config.Config, error) {
	if err != nil {
		return nil, err
	}
	if err := errors.Join(c.ReadSecretFiles(nil), checkGroup(c)); err != nil {
		return nil, err
	}
	return c, nil
}

// loadOffline validates the file alone, for CI or a build host: no secret
// files are read and no group is looked up.
func loadOffline(path string) (*config.Config, error) { return config.Load(path) }

// checkGroup fails when control.group does not exist, which would otherwise
// only show when the control socket is created.
func checkGroup(c *config.Config) error {
	if c.Control.Group == "" {
		return nil
	}
	if _, err := user.LookupGroup(c.Control.Group); err != nil {
		return fmt.Errorf("config: control.group: %w", err)
	}
	return nil
}

// configError marks errors that should exit with exitConfig.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func (rt *app) execute(ctx context.Context, args []string) int {
	var path string
	var check, noSecrets bool
	code := exitOK
	cmd := &cobra.Command{
		Use:   "dmvpnd",
		Short: "DMVPN daemon (NHRP, mGRE, IPsec, BGP) for one hub or spoke",
		Long: `dmvpnd runs one DMVPN hub or spoke: it speaks NHRP, programs an mGRE
tunnel through netlink, protects peers with IPsec through strongSwan (VICI)
and carries routes with an embedded BGP speaker. It is configured by one
YAML file (dmvpnd.yaml(5)) and controlled with dmvpnctl(8).

Run by systemd (Type=notify): READY=1 once the tunnel is programmed,
WATCHDOG=1 while the controller loop turns. SIGHUP reloads the file (as
does "dmvpnctl reload"); SIGTERM stops, leaving the kernel state for the
next start to adopt.

Exit status: 0 after SIGTERM or a successful --check, 1 on a runtime
failure, 2 on an invalid configuration (not restarted by the unit).`,
		Version:       version.Version(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			load := rt.load
			if noSecrets {
				if !check {
					return configError{errors.New("--no-secrets only goes with --check")}
				}
				load = loadOffline
			}
			cfg, err := load(path)
			if err != nil {
				return configError{err}
			}
			if check {
				for _, w := range cfg.Warnings() {
					fmt.Fprintf(rt.stderr, "dmvpnd: warning: %s\n", w)
				}
				_, err := fmt.Fprintf(rt.stdout, "%s: configuration OK (%s, tunnel %s %s)\n",
					path, cfg.NHRP.Role, cfg.Tunnel.Name, cfg.Tunnel.Address)
				return err
			}
			code = rt.serve(cmd.Context(), path, cfg)
			return nil
		},
	}
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.AddCommand(docgen.Command(cmd))
	cmd.SetVersionTemplate(version.Text("dmvpnd"))
	cmd.SetOut(rt.stdout)
	cmd.SetErr(rt.stderr)
	cmd.Flags().StringVarP(&path, "config", "c", DefaultConfig, "configuration file (YAML)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration, the files it names and control.group, and exit (0 if valid, 2 if not)")
	cmd.Flags().BoolVar(&noSecrets, "no-secrets", false, "with --check: validate the file alone, without reading PSK/certificate files or looking up control.group (CI)")
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(rt.stderr, "dmvpnd: %v\n", err)
		if errors.As(err, new(configError)) {
			return exitConfig
		}
		return exitFailure
	}
	return code
}
