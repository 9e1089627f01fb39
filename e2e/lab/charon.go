package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// Charon is a strongSwan charon running in one node's namespace with its
// own configuration, vici socket and /run (pid file), so several can run
// side by side.
type Charon struct {
	n    *Node
	Proc *Proc
	// Conf is the strongswan.conf path; Socket the vici socket path
	// ("unix://" + Socket is the URI for govici or swanctl --uri).
	Conf, Socket string
	// SwanctlConf is the swanctl.conf path used by Swanctl's --load-all.
	SwanctlConf string
	// Log is charon's log file in the results directory.
	Log string
	// run is the directory bind-mounted on charon's /run.
	run string
}

// CharonConfig configures StartCharon.
type CharonConfig struct {
	// Swanctl is the content of swanctl.conf (connections, secrets).
	Swanctl string
	// Extra is appended inside the charon { } section of strongswan.conf.
	Extra string
	// Plugins replaces DefaultCharonPlugins (e.g. to add x509 for certificates).
	Plugins []string
	// Name tells a second charon in the node from the first: its files
	// are NAME-strongswan.conf, NAME-swanctl.conf and NAME-charon.log, its
	// /run is its own. "" is the node's charon.
	Name string
	// SystemSocket serves VICI on charon's compiled-in default
	// (ipsec.DefaultSocketPath, /var/run/charon.vici) in its private /run,
	// as the system's strongswan.service does; Swanctl reaches it without
	// --uri. Socket is then that file's path outside the charon's /run.
	SystemSocket bool
}

// DefaultCharonPlugins is enough for IKEv2 with PSKs and AES-GCM, ECP or
// MODP groups, and the kernel's XFRM. Loading only these keeps charon's
// start fast under emulation (each plugin is a shared object to load).
var DefaultCharonPlugins = []string{
	"random", "nonce", "openssl", "aes", "gcm", "sha1", "sha2", "hmac", "kdf", "drbg",
	"gmp", "kernel-netlink", "socket-default", "vici", "updown",
}

// StartCharon writes the node's strongswan.conf and swanctl.conf and starts
// charon, waiting until its vici socket exists. Charon's /run is a private
// directory bind-mounted inside the node's mount namespace.
func (n *Node) StartCharon(ctx context.Context, cfg CharonConfig) (*Charon, error) {
	run, prefix := n.scratchDir()+"/strongswan", ""
	if cfg.Name != "" {
		run, prefix = n.scratchDir()+"/strongswan-"+cfg.Name, cfg.Name+"-"
	}
	c := &Charon{
		n: n,
		// Configuration and logs live in the results directory, written
		// from the host; the socket and /run need a local filesystem.
		Conf:        n.logDir() + "/" + prefix + "strongswan.conf",
		SwanctlConf: n.logDir() + "/" + prefix + "swanctl.conf",
		Socket:      run + "/charon.vici",
		Log:         n.logDir() + "/" + prefix + "charon.log",
		run:         run + "/run",
	}
	confSocket := c.Socket
	if cfg.SystemSocket {
		confSocket = ipsec.DefaultSocketPath // seen through the bind mount
		c.Socket = c.run + "/" + filepath.Base(ipsec.DefaultSocketPath)
	}
	plugins := cfg.Plugins
	if plugins == nil {
		plugins = DefaultCharonPlugins
	}
	if err := os.MkdirAll(n.logDir(), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	for path, data := range map[string]string{
		c.Conf:        ipsec.StrongswanConf(ipsec.CharonConf{Socket: confSocket, Log: c.Log, LogLevel: 1, Plugins: plugins, Extra: cfg.Extra}),
		c.SwanctlConf: cfg.Swanctl,
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if _, err := n.l.Run(ctx, "mkdir -p "+shellQuote(c.run)); err != nil {
		return nil, err
	}
	p, err := n.StartScript(ctx, prefix+"charon-stdio", fmt.Sprintf("mount --rbind %s /run && STRONGSWAN_CONF=%s exec /usr/lib/ipsec/charon",
		shellQuote(c.run), shellQuote(c.Conf)))
	if err != nil {
		return nil, err
	}
	c.Proc = p
	if err := waitReady(ctx, n.l, p, "test -S "+shellQuote(c.Socket), c.Log); err != nil {
		return nil, fmt.Errorf("lab: charon on %s: %w", n.Name, err)
	}
	return c, nil
}

// MustStartCharon is StartCharon bounded by the step timeout; it fails the test on error.
func (n *Node) MustStartCharon(cfg CharonConfig) *Charon {
	n.l.t.Helper()
	ctx, cancel := n.l.stepContext()
	defer cancel()
	c, err := n.StartCharon(ctx, cfg)
	if err != nil {
		n.l.t.Fatal(err)
	}
	return c
}

// Swanctl runs swanctl against this charon, e.g. Swanctl(ctx, "--load-all")
// or Swanctl(ctx, "--initiate", "--child", "gre"), with this charon's
// strongswan.conf and /run (so a charon on the default socket is reached as
// the system's swanctl reaches it).
func (c *Charon) Swanctl(ctx context.Context, args ...string) (Result, error) {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	cmd := "mount --rbind " + shellQuote(c.run) + " /run && STRONGSWAN_CONF=" + c.Conf + " swanctl " + strings.Join(q, " ")
	if len(args) > 0 && (args[0] == "--load-all" || args[0] == "-q") {
		cmd += " --file " + c.SwanctlConf
	}
	return c.n.Run(ctx, cmd)
}
