package e2e

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// labBinDir is where this checkout's lab binaries go: the module's cache
// (the guest sees the same path through the host root), in a directory of
// this checkout's own. Worktrees share one .cache (a symlink): with one
// bin directory for all, a lab run could start another branch's dmvpnd,
// built a second earlier by a concurrent run.
func labBinDir() (root, dir string, err error) {
	root, err = filepath.Abs("..")
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(root))
	return root, filepath.Join(root, ".cache", "lab", "bin", fmt.Sprintf("%s-%x", filepath.Base(root), sum[:4])), nil
}

// binaries builds dmvpnd and dmvpnctl once per test process into
// labBinDir.
var binaries = sync.OnceValues(func() (string, error) {
	root, dir, err := labBinDir()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/dmvpnd", "./cmd/dmvpnctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
})

// dnode is one node running dmvpnd in the lab.
type dnode struct {
	name    string
	nbma    netip.Addr
	tunnel  netip.Addr
	lan     netip.Prefix // the LAN interface address, e.g. 10.1.1.1/24
	hub     bool
	node    *lab.Node
	proc    *lab.Proc
	dir     string
	bin     string
	extra   string // extra YAML appended to the generated config
	group   string // a spoke's nhrp.group ("" none)
	nhsYAML string
	// metrics is metrics.listen ("" off); holding the NHRP holding time
	// ("" is 300s); regInterval a spoke's nhrp.registration_interval (""
	// unset: a third of the holding time).
	metrics, holding, regInterval string
	// multicast is nhrp.multicast as a YAML flow mapping ("" unset), e.g.
	// "{dynamic: true}".
	multicast string
	// hostAddress is tunnel.host_address.
	hostAddress bool
	// variant names the scenario variant running on a shared lab
	// (scRunVariant): it prefixes the process log (VARIANT-dmvpnd.log),
	// so each variant's log stays apart. "" is dmvpnd.log.
	variant string
}

func (d *dnode) socket() string { return d.dir + "/ctl.sock" }

// config renders the node's dmvpnd.yaml.
func (d *dnode) config() string {
	var b strings.Builder
	holding := cmp.Or(d.holding, "300s")
	fmt.Fprintf(&b, "tunnel: {name: gre1, key: 42, local_nbma: %s, address: %s/24, host_address: %t}\n", d.nbma, d.tunnel, d.hostAddress)
	if d.hub {
		fmt.Fprintf(&b, "nhrp:\n  role: hub\n  network_id: 1\n  holding_time: %s\n  redirect: true\n", holding)
	} else {
		fmt.Fprintf(&b, "nhrp:\n  role: spoke\n  network_id: 1\n  holding_time: %s\n  shortcut: true\n  nhs:\n%s", holding, d.nhsYAML)
		if d.regInterval != "" {
			fmt.Fprintf(&b, "  registration_interval: %s\n", d.regInterval)
		}
		if d.group != "" {
			fmt.Fprintf(&b, "  group: %s\n", d.group)
		}
	}
	if d.multicast != "" {
		fmt.Fprintf(&b, "  multicast: %s\n", d.multicast)
	}
	fmt.Fprintf(&b, "control: {socket: %s}\nmetrics: {listen: %q}\nlog: {level: debug}\n", d.socket(), d.metrics)
	b.WriteString(d.extra)
	return b.String()
}

// start writes the config and starts dmvpnd on the node.
func (d *dnode) start(t *testing.T, l *lab.Lab) {
	t.Helper()
	d.startWith(t, l, d.config())
}

// startWith writes cfg as the node's dmvpnd.yaml and starts dmvpnd.
func (d *dnode) startWith(t *testing.T, l *lab.Lab, cfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.launch(ctx, l, cfg); err != nil {
		t.Fatal(err)
	}
}

// launch is startWith for callers that handle the error.
func (d *dnode) launch(ctx context.Context, l *lab.Lab, cfg string) error {
	path := d.dir + "/dmvpnd.yaml"
	if err := l.WriteFile(ctx, path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("%s: write config: %w", d.name, err)
	}
	name := "dmvpnd"
	if d.variant != "" {
		name = d.variant + "-dmvpnd"
	}
	p, err := d.node.Start(ctx, name, d.bin+"/dmvpnd --config "+path)
	if err != nil {
		return err
	}
	d.proc = p
	return nil
}

// ctl runs dmvpnctl against the node's daemon.
func (d *dnode) ctl(ctx context.Context, args string) (string, error) {
	res, err := d.node.Run(ctx, d.bin+"/dmvpnctl --socket "+d.socket()+" "+args)
	if err != nil {
		return "", fmt.Errorf("%s: dmvpnctl %s: %w", d.name, args, err)
	}
	return string(res.Stdout), nil
}

// ctlJSON runs dmvpnctl ARGS --json against d's daemon and decodes the
// answer into T, the controller/api type of that view: the one way the
// scenarios read a node's state. An answer that does not decode is a
// lab.Permanent error (waiting will not fix it).
func ctlJSON[T any](ctx context.Context, d *dnode, args string) (T, error) {
	var v T
	out, err := d.ctl(ctx, args+" --json")
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return v, lab.Permanent(fmt.Errorf("%s: dmvpnctl %s --json: %v\n%s", d.name, args, err, out))
	}
	return v, nil
}

// ctlWait polls dmvpnctl ARGS --json on d every 250 ms until ok accepts
// the decoded view or timeout passes, and returns the last view read: how
// a scenario waits for a node's state.
func ctlWait[T any](ctx context.Context, d *dnode, timeout time.Duration, args string, ok func(T) error) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last T
	err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		v, err := ctlJSON[T](ctx, d, args)
		if err != nil {
			return err
		}
		last = v
		return ok(v)
	})
	return last, err
}

// nodeCounters returns the node's show counters view.
func nodeCounters(ctx context.Context, d *dnode) (api.Counters, error) {
	return ctlJSON[api.Counters](ctx, d, "show counters")
}

// settledCounters waits (up to 10 s) until d's engine has released every
// NHRP packet it held for an SA, and returns its counters then: a packet
// held for its SA is counted drop_untrusted only when its hold expires
// (2 s), so a test reading drop_untrusted at once could miss a cleartext
// packet that passed the kernel guard. Such a packet is never released:
// the wait then fails, naming the counts.
func settledCounters(ctx context.Context, d *dnode) (api.Counters, error) {
	var c api.Counters
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := lab.WaitFor(wctx, 500*time.Millisecond, func(ctx context.Context) error {
		got, err := nodeCounters(ctx, d)
		if err != nil {
			return err
		}
		c = got
		if held, released := got["nhrp_rx_held_for_sa"], got["nhrp_rx_released_by_sa"]; held != released {
			return fmt.Errorf("%s: %d NHRP packets held for an SA, %d released", d.name, held, released)
		}
		return nil
	})
	return c, err
}

// showDMVPN returns the node's show dmvpn view.
func (d *dnode) showDMVPN(ctx context.Context) (api.DMVPN, error) {
	return ctlJSON[api.DMVPN](ctx, d, "show dmvpn")
}

// waitReady waits for dmvpnctl status --wait to succeed.
func (d *dnode) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	if _, err := d.ctl(ctx, fmt.Sprintf("status --wait --timeout %s", timeout)); err != nil {
		t.Fatalf("%s not ready: %v", d.name, err)
	}
}

// dmvpnLab builds the hub + spokes topology and returns the nodes (not
// started).
func dmvpnLab(t *testing.T, spokes int) (*lab.Lab, []*dnode) {
	t.Helper()
	return dmvpnLabWith(t, spokes)
}

// dmvpnLabWith is dmvpnLab with extra namespaces on the same underlay
// that run no dmvpnd (an outsider, say).
func dmvpnLabWith(t *testing.T, spokes int, extra ...lab.NodeSpec) (*lab.Lab, []*dnode) {
	t.Helper()
	var specs []scSpec
	for i := 0; i <= spokes; i++ {
		name := "hub"
		if i > 0 {
			name = fmt.Sprintf("s%d", i)
		}
		specs = append(specs, scSpec{name: name, hub: i == 0,
			nbma: fmt.Sprintf("198.51.100.%d", 1+i), tunnel: fmt.Sprintf("10.0.0.%d", 1+i), lan: fmt.Sprintf("10.1.%d.1/24", i)})
	}
	l, nodes := scBuild(t, specs, extra...)
	for _, d := range nodes {
		d.nhsYAML = "    - {nbma: 198.51.100.1, protocol: 10.0.0.1}\n"
	}
	return l, nodes
}

// tunnelRxPackets reads gre1's received packet counter on a node.
func tunnelRxPackets(ctx context.Context, d *dnode) (int, error) {
	res, err := d.node.Run(ctx, "cat /sys/class/net/gre1/statistics/rx_packets")
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscanf(strings.TrimSpace(string(res.Stdout)), "%d", &n)
	return n, err
}

// hubRelayed pings count times from one spoke LAN to another (every probe
// answered, see scLANPing) and returns how many packets the hub's gre1
// received meanwhile: few once a shortcut carries the flow.
func hubRelayed(ctx context.Context, hub, from, to *dnode, count int) (int, error) {
	before, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		return 0, err
	}
	if err := scLANPing(ctx, from, to.lan.Addr(), count); err != nil {
		return 0, err
	}
	after, err := tunnelRxPackets(ctx, hub)
	if err != nil {
		return 0, err
	}
	return after - before, nil
}
