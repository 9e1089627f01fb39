package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// pkgVersion is the git describe string the scenario's package is built
// with (make package passes git describe the same way).
const pkgVersion = "v0.15.0-3-gdeb1500"

// TestDebInstall is issue 15's first lab acceptance line, and on the same
// boot its reload line (pkgReloadChecks, package_reload_test.go):
//
//   - the .deb (deploy/package, as make package builds it) is installed
//     with dpkg -i into a private root: writable overlays on /etc, /usr,
//     /var and /root over the guest's read-only view of the host, so the
//     host's dpkg database and files are never touched. dpkg runs with an
//     admin directory of its own that holds only the host's status entries
//     of the package's Depends (read from the .deb): reading the host's
//     full database (~120k files over 9p) and running man-db's trigger took
//     79 s under TCG, the unpacking itself is what is left. The package's
//     scripts run: postinst creates the dmvpn group and applies the sysctl
//     drop-in (checked in the node's namespace);
//   - the installed private root is then the lower layer of a private root
//     per node (hub, hub2, spoke), so each has its own /etc/dmvpnd and
//     /run;
//   - dmvpnd --version and dmvpnctl --version name the version;
//   - the installed examples hub.yaml and spoke.yaml pass --check as
//     shipped, once the PSK file they name exists; the lab's topology uses
//     the examples' own addresses (hub 192.0.2.1, spoke 198.51.100.11, and
//     spoke.yaml's second hub 192.0.2.2 / 10.0.0.2, on one underlay) and
//     each node's charon answers at the VICI socket the example names (a
//     symlink in the node's private /run), so the files run unchanged: the
//     operator's only steps are writing the PSK file and copying the
//     example to /etc/dmvpnd/dmvpnd.yaml. The second hub runs hub.yaml
//     with its addresses set by DMVPND_* environment variables (what a
//     unit drop-in's Environment= would pass): a spoke is ready only once
//     every BGP neighbor it names is established, so without it the spoke
//     of spoke.yaml never is;
//   - each dmvpnd runs the installed unit's ExecStart line after creating
//     its RuntimeDirectory (the lab has no systemd);
//   - the spoke registers with both hubs (each lists it UP) over IKEv2 SAs
//     made with the PSK, is ready, and pings cross the tunnel to each hub,
//     every probe answered.
func TestDebInstall(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	deb, err := rolloutPackage(root, pkgVersion)
	if err != nil {
		t.Fatal(err)
	}
	hubCfg, err := pkgExample(deb, "hub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spokeCfg, err := pkgExample(deb, "spoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// spoke.yaml names two hubs: hub.yaml's, and a second one (NBMA
	// address, BGP neighbor) that runs hub.yaml with its addresses
	// overridden from the environment.
	nhs, nbrs := spokeCfg.NHRP.NHS, spokeCfg.BGP.Neighbors
	if len(nhs) != 2 || len(nbrs) != 2 || nhs[0].NBMA != hubCfg.Tunnel.LocalNBMA || nbrs[0].Address != hubCfg.Tunnel.Address.Addr() {
		t.Fatalf("spoke.yaml does not name hub.yaml's hub and a second one: NHS %+v, BGP neighbors %+v", nhs, nbrs)
	}
	debVersion, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f Version: %v", err)
	}

	l := lab.New(t, lab.Options{StepTimeout: 3 * time.Minute})
	hub := &labHost{name: "hub", nbma: hubCfg.Tunnel.LocalNBMA, tunnel: hubCfg.Tunnel.Address.Addr(), l: l}
	hub2 := &labHost{name: "hub2", nbma: nhs[1].NBMA, tunnel: nbrs[1].Address, l: l}
	spoke := &labHost{name: "spoke", nbma: spokeCfg.Tunnel.LocalNBMA, tunnel: spokeCfg.Tunnel.Address.Addr(), l: l}
	hosts := []*labHost{hub, hub2, spoke}
	topo := lab.Topology{Underlay: pkgCommonPrefix(hub.nbma, hub2.nbma, spoke.nbma)}
	for _, h := range hosts {
		topo.Nodes = append(topo.Nodes, lab.NodeSpec{Name: h.name, NBMA: h.nbma})
	}
	l.Build(topo)
	for _, h := range hosts {
		h.node = l.Node(h.name)
	}
	// hub2's environment: hub.yaml's addresses replaced (DMVPND_SECTION_KEY).
	hub2Env := fmt.Sprintf("DMVPND_TUNNEL_LOCAL_NBMA=%s DMVPND_TUNNEL_ADDRESS=%s DMVPND_BGP_ROUTER_ID=%s DMVPND_BGP_LISTEN=%s",
		hub2.nbma, netip.PrefixFrom(hub2.tunnel, hubCfg.Tunnel.Address.Bits()), hub2.tunnel, netip.AddrPortFrom(hub2.tunnel, 179))
	env := map[*labHost]string{hub2: hub2Env}
	cfgs := map[*labHost]*config.Config{hub: hubCfg, hub2: hubCfg, spoke: spokeCfg}
	examples := map[*labHost]string{hub: "hub.yaml", hub2: "hub.yaml", spoke: "spoke.yaml"}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// Install once, in the hub's network namespace (postinst's sysctls are
	// per namespace) and a private root whose upper layers stay on the
	// tmpfs inst, mounted here so that it outlives that mount namespace.
	inst := l.Scratch() + "/pkgroot"
	admin := inst + "/dpkg"
	l.MustRun(fmt.Sprintf("mkdir -p %[1]s && mount -t tmpfs -o mode=0755 pkgroot %[1]s", inst))
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, _ = l.Exec(cctx, "umount -l "+inst)
	})
	t0 := time.Now()
	script := fmt.Sprintf(`set -e
mkdir -p %[2]s/info %[2]s/updates %[2]s/triggers
touch %[2]s/available
dpkg-deb -f %[3]s Depends | tr ',|' '\n\n' | sed 's/(.*//' | xargs dpkg-query -s > %[2]s/status
sed -n 's/^Package: //p' %[2]s/status | while read -r p; do : > %[2]s/info/$p.list; done
unshare -m --propagation private sh -c %[4]s`, inst, admin, deb,
		shq(privateRootScript(inst, "")+"\ndpkg --admindir="+admin+" -i "+deb))
	res, err := hub.node.Run(ctx, script)
	if err != nil {
		t.Fatalf("dpkg -i: %v", err)
	}
	t.Logf("timing: dpkg -i %v\n%s%s", time.Since(t0).Round(time.Millisecond), res.Stdout, res.Stderr)
	st := l.MustRun(fmt.Sprintf("dpkg-query --admindir=%s -W -f '${Status} ${Version}' dmvpnd", admin))
	if want := "install ok installed " + strings.TrimSpace(string(debVersion)); st != want {
		t.Errorf("dpkg-query: %q, want %q", st, want)
	}
	// postinst applied the package's sysctl drop-in in the hub's namespace.
	if got := strings.Fields(hub.node.MustRun("sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter")); strings.Join(got, " ") != "1 2" {
		t.Errorf("hub after postinst: ip_forward, rp_filter = %v, want 1 2 (usr/lib/sysctl.d/60-dmvpnd.conf)", got)
	}

	psk := "pkg-lab-psk-one-not-a-secret-0123456789"
	for _, h := range hosts {
		cfg := cfgs[h]
		h.root = pkgPrivateRoot(t, l, h, inst)
		if got := h.mustExec(t, "getent group "+cfg.Control.Group); !strings.HasPrefix(got, cfg.Control.Group+":") {
			t.Errorf("%s: group %s: %q", h.name, cfg.Control.Group, got)
		}
		for _, prog := range []string{"/usr/sbin/dmvpnd", "/usr/bin/dmvpnctl"} {
			out := h.mustExec(t, prog+" --version")
			want := filepath.Base(prog) + " " + pkgVersion
			if first, _, _ := strings.Cut(out, "\n"); first != want || !strings.Contains(out, "commit lab") {
				t.Errorf("%s: %s --version = %q, want %q and the commit", h.name, prog, out, want)
			}
		}
		// The operator's steps: the PSK file the example names, then the
		// example as the configuration.
		pkgWritePSK(t, h, cfg.IPsec.Auth.PSKFile, psk)
		out := h.mustExec(t, strings.TrimSpace(env[h]+" /usr/sbin/dmvpnd --check --config /etc/dmvpnd/examples/"+examples[h]))
		if !strings.Contains(out, "configuration OK") {
			t.Errorf("%s: dmvpnd --check %s: %q", h.name, examples[h], out)
		}
		h.mustExec(t, "cp /etc/dmvpnd/examples/"+examples[h]+" /etc/dmvpnd/dmvpnd.yaml")
	}

	charons := map[*labHost]*lab.Charon{}
	for _, h := range hosts {
		c := h.node.MustStartCharon(lab.CharonConfig{})
		charons[h] = c
		sock := cfgs[h].IPsec.ViciSocket
		h.mustExec(t, fmt.Sprintf("mkdir -p %s && ln -sf %s %s", filepath.Dir(sock), c.Socket, sock))
	}
	unit := pkgUnit(t, hub)
	for _, h := range hosts {
		pkgStart(t, h, unit, env[h], h != spoke) // the spoke is ready once registered, BGP up with both hubs
	}
	t1 := time.Now()
	waitRegistered(t, hub, []*labHost{spoke})
	waitRegistered(t, hub2, []*labHost{spoke})
	if res, err := spoke.exec(ctx, "dmvpnctl status --wait --timeout 150s"); err != nil || res.Exit != 0 {
		t.Fatalf("spoke: not ready: exit %d %v\n%s%s", res.Exit, err, res.Stdout, res.Stderr)
	}
	t.Logf("timing: spoke registered with both hubs and ready %v after dmvpnd started", time.Since(t1).Round(time.Millisecond))
	for _, h := range []*labHost{hub, hub2} {
		if err := pkgPing(ctx, spoke, h.tunnel, 5); err != nil {
			t.Fatal(err)
		}
		ike, child, raw, err := ipdCharonSAs(ctx, charons[spoke], h.nbma)
		if err != nil {
			t.Fatal(err)
		}
		if ike != 1 || child != 1 {
			t.Errorf("spoke's charon: %d IKE_SAs, %d CHILD_SAs with %s, want 1 and 1:\n%s", ike, child, h.name, raw)
		}
	}

	t.Run("reload", func(t *testing.T) {
		node := func(h *labHost) pkgNode {
			return pkgNode{labHost: h, charon: charons[h], unit: unit, pskFile: cfgs[h].IPsec.Auth.PSKFile}
		}
		pkgReloadChecks(t, []pkgNode{node(hub), node(hub2)}, node(spoke))
	})
}

// pkgExample reads an example configuration from the package.
func pkgExample(deb, name string) (*config.Config, error) {
	out, err := exec.Command("sh", "-c", fmt.Sprintf("dpkg-deb --fsys-tarfile %s | tar -xO ./etc/dmvpnd/examples/%s", shq(deb), name)).Output()
	if err != nil {
		return nil, fmt.Errorf("%s from %s: %w", name, deb, err)
	}
	c, err := config.Parse(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// pkgCommonPrefix is the longest prefix holding every address.
func pkgCommonPrefix(addrs ...netip.Addr) netip.Prefix {
	for bits := 32; bits > 0; bits-- {
		p := netip.PrefixFrom(addrs[0], bits).Masked()
		if !slices.ContainsFunc(addrs, func(a netip.Addr) bool { return !p.Contains(a) }) {
			return p
		}
	}
	return netip.PrefixFrom(addrs[0], 0).Masked()
}

// pkgPrivateRoot starts the process holding h's private root: the
// installed system (installed, the upper layers dpkg wrote) beneath a
// private layer, and waits until its mounts are in place.
func pkgPrivateRoot(t *testing.T, l *lab.Lab, h *labHost, installed string) *lab.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inner := privateRootScript(l.Scratch()+"/hostfs/"+h.name, installed) + "\ntouch /run/.private-root\nexec sleep 2147483647"
	p, err := h.node.StartScript(ctx, "root", "exec unshare -m --propagation private sh -c "+shq(inner))
	if err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		res, err := l.Exec(ctx, fmt.Sprintf("nsenter -t %d -m test -e /run/.private-root", p.PID))
		if err == nil && res.Exit != 0 {
			if !p.Alive(ctx) {
				return lab.Permanent(fmt.Errorf("%s: private root failed (log %s)", h.name, p.Log))
			}
			err = fmt.Errorf("%s: private root not ready", h.name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pkgUnitFile is the installed unit's path.
const pkgUnitFile = "/lib/systemd/system/dmvpnd.service"

// pkgUnit reads the installed unit file's [Service] settings (first value
// of each key).
func pkgUnit(t *testing.T, h *labHost) map[string]string {
	t.Helper()
	out := h.mustExec(t, "cat "+pkgUnitFile)
	u := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if _, seen := u[k]; !seen {
			u[k] = v
		}
	}
	for _, k := range []string{"ExecStart", "ExecReload", "RuntimeDirectory"} {
		if u[k] == "" {
			t.Fatalf("%s has no %s", pkgUnitFile, k)
		}
	}
	return u
}

// pkgStart does what systemd does for the unit, as far as the lab needs:
// creates the RuntimeDirectory and runs ExecStart in h's root, with env
// ("K=V ...", the unit's Environment=) if set. With wait it waits until
// dmvpnctl status --wait (default socket) reports ready.
func pkgStart(t *testing.T, h *labHost, unit map[string]string, env string, wait bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mode := unit["RuntimeDirectoryMode"]
	if mode == "" {
		mode = "0755"
	}
	execStart := unit["ExecStart"]
	if env != "" {
		execStart = "env " + env + " " + execStart
	}
	script := fmt.Sprintf("mkdir -p -m %s /run/%s && exec %s", mode, unit["RuntimeDirectory"], execStart)
	p, err := h.node.StartScript(ctx, "dmvpnd", fmt.Sprintf("exec nsenter -t %d -m -- sh -c %s", h.root.PID, shq(script)))
	if err != nil {
		t.Fatal(err)
	}
	if !wait {
		return
	}
	res, err := h.exec(ctx, "dmvpnctl status --wait --timeout 150s")
	if err != nil || res.Exit != 0 {
		t.Fatalf("%s: dmvpnd not ready: exit %d %v\n%s%s(log %s)", h.name, res.Exit, err, res.Stdout, res.Stderr, p.Log)
	}
}

// pkgPing pings dst from h's tunnel address count times (0.2 s apart) and
// fails unless every probe is answered.
func pkgPing(ctx context.Context, h *labHost, dst netip.Addr, count int) error {
	res, err := h.node.Exec(ctx, fmt.Sprintf("ping -n -q -c %d -i 0.2 -W 2 -I %s %s", count, h.tunnel, dst))
	if err != nil {
		return err
	}
	if !strings.Contains(string(res.Stdout), fmt.Sprintf(" %d received", count)) {
		return fmt.Errorf("%s: ping %s from %s: exit %d: %s", h.name, dst, h.tunnel, res.Exit, res.Stdout)
	}
	return nil
}
