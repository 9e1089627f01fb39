package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// rolloutMaxLost bounds the probes the rolling upgrade may lose.
const rolloutMaxLost = 2

// TestAnsibleRollout is issue 16's lab acceptance: deploy/ansible/rollout.yml
// run with the command and the inventory of deploy/README.md's fleet
// section against a hub and three spokes that start as bare hosts (no
// dmvpnd, no configuration):
//
//   - the inventory is README's: its hub1 and spoke1 as written, spoke2 and
//     spoke3 made from spoke1 with the next addresses, the PSK vaulted;
//     the lab adds only how to reach each host (ansible_host/port, the
//     SSH key, root without become, the Python path);
//   - each host is a node namespace running sshd in a mount namespace of
//     its own (writable overlays on /etc, /usr, /var; an empty /root and
//     /run; a dpkg database holding only the package's dependency
//     closure, copied from the host's, and no apt indexes: under TCG,
//     reading the full database and indexes cost minutes per install);
//   - Ansible runs natively on the host with Debian's mitogen strategy
//     and reaches each sshd through a lab.HostNIC (qemu user-mode card in
//     the node, forwarded from the host's loopback);
//   - e2e/internal/systemctl stands in for systemd; the units are the
//     package's (dmvpnd.service starts the dedicated charon it Wants=);
//   - the two builds differ only in their version string; the first is
//     TestDebInstall's (pkgVersion, one build for both), both are built
//     as make package builds them (gzip, installed as built) while the lab
//     boots.
//
// Runs, each output saved (each line timestamped) in RUNDIR/ansible/NAME.log:
// check mode on the fresh hosts (nothing installed); the first run builds
// the DMVPN (spokes registered, a LAN-to-LAN ping forms a Phase 3
// shortcut); a second run and a check-mode run change nothing; a
// rolling upgrade to the second build under a 10/s spoke-to-spoke ping
// (at most rolloutMaxLost probes lost); a log level change for every
// spoke with a configuration dmvpnd --check rejects on spoke2 stops the rollout at spoke2: neither
// host of its batch (spoke1+spoke2) replaces its running file, and spoke3
// is not touched. Each host's dmvpnd and charon logs are saved in
// RUNDIR/nodes/NAME/ at the end.
//
// Where the time goes under TCG (the saved logs show it per task): the
// mitogen bootstrap of each host's Python once per run (rollout.yml
// reaches every host first, so the four bootstraps overlap), the package
// copy and apt in the first run and the upgrade, and the readiness waits.
func TestAnsibleRollout(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if !lab.Enabled() {
		t.Skip("lab tests are off: set DMVPND_LAB_TESTS=1 (make test-lab)")
	}
	readme, err := readRolloutReadme(filepath.Join(root, "deploy/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := newRolloutFleet(readme.inventory, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Two builds that differ in their version string, the first
	// TestDebInstall's (one build between them), made while the lab boots.
	const v1, v2 = pkgVersion, "v0.15.0-4-g0a1b2c3"
	t0 := time.Now()
	type pkg struct {
		version, deb string
		err          error
	}
	built := make(chan pkg, 2)
	for _, v := range []string{v1, v2} {
		go func() {
			deb, err := rolloutPackage(root, v)
			built <- pkg{v, deb, err}
		}()
	}

	var nics []lab.HostNIC
	var nbmas []netip.Addr
	for _, h := range fleet.hosts {
		nics = append(nics, lab.HostNIC{Node: h.name, Ports: []int{22}})
		nbmas = append(nbmas, h.nbma)
	}
	l := lab.New(t, lab.Options{StepTimeout: 90 * time.Second, HostNICs: nics})
	t.Cleanup(func() { saveRolloutLogs(l, fleet.hosts) })
	topo := lab.Topology{Underlay: pkgCommonPrefix(nbmas...)}
	for _, h := range fleet.hosts {
		spec := lab.NodeSpec{Name: h.name, NBMA: h.nbma}
		if h.lan.IsValid() {
			spec.LANs = []netip.Prefix{h.lan}
		}
		topo.Nodes = append(topo.Nodes, spec)
	}
	l.Build(topo)
	debs := map[string]string{}
	for range 2 {
		p := <-built
		if p.err != nil {
			t.Fatal(p.err)
		}
		debs[p.version] = p.deb
	}
	t.Logf("timing: lab built and two packages made %v", time.Since(t0).Round(time.Second))
	status, err := rolloutDpkgStatus(debs[v1])
	if err != nil {
		t.Fatal(err)
	}

	// SSH: one host key for every sshd, one client key for Ansible, made
	// on the host in the results directory (the same path in the guest).
	sshDir := l.Dir() + "/ssh"
	ansDir := l.Dir() + "/ansible"
	for _, d := range []string{sshDir, ansDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"host_key", "id_ed25519"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(sshDir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	if err := os.Rename(sshDir+"/id_ed25519.pub", sshDir+"/authorized_keys"); err != nil {
		t.Fatal(err)
	}
	systemctl := l.Dir() + "/bin/systemctl"
	build := exec.Command("go", "build", "-trimpath", "-o", systemctl, "./e2e/internal/systemctl")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build systemctl: %v\n%s", err, out)
	}
	if err := os.WriteFile(l.Dir()+"/dpkg-status", []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	for _, h := range fleet.hosts {
		h.l = l
		h.node = l.Node(h.name)
		h.root = startRolloutSSHD(t, l, h, sshDir, systemctl, l.Dir()+"/dpkg-status")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// Every sshd at once: each answers once its namespace's sshd runs.
	reached := make(chan error, len(fleet.hosts))
	for _, h := range fleet.hosts {
		addr, err := l.HostAddr(h.name, 22)
		if err != nil {
			t.Fatal(err)
		}
		fleet.ssh[h.name] = addr
		go func() {
			err := lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
				out, err := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(int(addr.Port())), "-i", sshDir+"/id_ed25519",
					"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
					"root@"+addr.Addr().String(), "true").CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
			if err != nil {
				err = fmt.Errorf("ssh to %s: %w", h.name, err)
			}
			reached <- err
		}()
	}
	for range fleet.hosts {
		if err := <-reached; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("timing: sshd on every host reachable from the host %v", time.Since(t1).Round(time.Millisecond))

	vaultPass := ansDir + "/vault-pass"
	if err := os.WriteFile(vaultPass, []byte("lab-vault-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet.pskVault, err = vaultString(vaultPass, "rollout-lab-psk-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	fleet.key = sshDir + "/id_ed25519"
	// command is README's rollout command for this run, its inventory
	// written beside its log.
	command := func(name, deb string, extra ...string) string {
		t.Helper()
		invPath := ansDir + "/" + name + "-inventory.yml"
		inv, err := fleet.render()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(invPath, inv, 0o600); err != nil {
			t.Fatal(err)
		}
		cmdline, err := replaceOnce(readme.command,
			"-i inventory.yml", "-i "+invPath,
			"~/.dmvpnd-vault", vaultPass,
			"$PWD/../../bin/dmvpnd.deb", deb)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(append([]string{cmdline}, extra...), " ")
	}
	run := func(name, deb string, extra ...string) rolloutRun {
		t.Helper()
		r, err := runPlaybook(t, root, ansDir, name, command(name, deb, extra...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hub, s1, s2, s3 := fleet.hosts[0], fleet.hosts[1], fleet.hosts[2], fleet.hosts[3]

	// Check mode on bare hosts: succeeds, installs nothing.
	r := run("0-check-fresh", debs[v1], "--check")
	if r.exit != 0 {
		t.Fatalf("check mode on fresh hosts: exit %d (%s)", r.exit, r.log)
	}
	for _, h := range fleet.hosts {
		if res, _ := h.exec(ctx, "test -e /usr/sbin/dmvpnd || test -e /etc/dmvpnd/dmvpnd.yaml"); res.Exit == 0 {
			t.Errorf("%s: check mode installed dmvpnd or its configuration", h.name)
		}
	}

	// The first run builds the DMVPN.
	r = run("1-deploy", debs[v1])
	if r.exit != 0 {
		t.Fatalf("first run: exit %d (%s)", r.exit, r.log)
	}
	waitRegistered(t, hub, fleet.hosts[1:])
	for _, h := range fleet.hosts {
		if st, v := h.mustStatus(t), runningVersion(t, h); !st.Ready || v != v1 {
			t.Errorf("%s: status %+v, running %s, want ready, version %s", h.name, st, v, v1)
		}
	}
	t2 := time.Now()
	if err := rolloutShortcut(ctx, s1, s2); err != nil {
		t.Fatalf("Phase 3 shortcut: %v", err)
	}
	t.Logf("timing: shortcut %s -> %s %v", s1.name, s2.name, time.Since(t2).Round(time.Millisecond))

	// Idempotence: a second run and a check-mode run change nothing. (Run
	// at once they took longer than one after the other: their eight
	// bootstraps fight over the guest's two CPUs and the host's.)
	for _, name := range []string{"2-again", "3-check-converged"} {
		var extra []string
		if strings.Contains(name, "check") {
			extra = []string{"--check"}
		}
		r = run(name, debs[v1], extra...)
		if r.exit != 0 {
			t.Fatalf("%s: exit %d (%s)", name, r.exit, r.log)
		}
		for _, h := range fleet.hosts {
			if c, ok := r.changed[h.name]; !ok || c != 0 {
				t.Errorf("%s: %s changed=%d (in recap: %t), want 0 (%s)", name, h.name, c, ok, r.log)
			}
		}
	}

	// Rolling upgrade under a 10/s spoke-to-spoke ping over the shortcut.
	ping, err := s1.node.Start(ctx, "rollout-ping", fmt.Sprintf("ping -n -i 0.1 -W 1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	r = run("4-upgrade", debs[v2])
	pr := stopPing(ctx, t, l, ping)
	if r.exit != 0 {
		t.Fatalf("upgrade: exit %d (%s)", r.exit, r.log)
	}
	t.Logf("timing: %s->%s LAN ping (10/s) during the rolling upgrade: %d sent, %d replied, lost (sequence numbers) %v",
		s1.name, s2.name, pr.sent, len(pr.replied), pr.missing)
	if pr.sent == 0 || len(pr.replied) == 0 {
		t.Errorf("the ping during the upgrade: %d sent, %d replied", pr.sent, len(pr.replied))
	}
	// Both ends of the shortcut restart; each new dmvpnd adopts the
	// kernel state and charon's SAs (ipsec.Config.AdoptGrace), so the flow
	// does not stop: 0 lost of 873 measured. The 2 allowed are headroom for
	// a reply delayed past ping's -W 1 on a loaded host, not for an SA
	// torn down and negotiated again (that lost 7-36).
	if len(pr.missing) > rolloutMaxLost {
		t.Errorf("the rolling upgrade lost %d probes %v, want at most %d: is a restarted spoke's SA torn down? (%s)",
			len(pr.missing), pr.missing, rolloutMaxLost, ping.Log)
	}
	// The probe that finds a dmvpnd whose restart a failed batch lost
	// (handlers of an aborted batch never run) sees every replaced binary.
	if got := r.taskResults("Look for an upgrade dmvpnd has not restarted into"); len(got) != len(fleet.hosts) {
		t.Errorf("upgrade: the replaced-binary probe reported %v, want changed on every host (%s)", got, r.log)
	} else {
		for h, res := range got {
			if res != "changed" {
				t.Errorf("upgrade: the replaced-binary probe on %s: %s, want changed (%s)", h, res, r.log)
			}
		}
	}
	for _, h := range fleet.hosts {
		if st, v := h.mustStatus(t), runningVersion(t, h); !st.Ready || v != v2 {
			t.Errorf("%s after the upgrade: status %+v, running %s, want ready, version %s", h.name, st, v, v2)
		}
	}
	waitRegistered(t, hub, fleet.hosts[1:])

	// A change for every spoke (log level) with a configuration on spoke2
	// that dmvpnd --check rejects: the batch spoke1+spoke2 stops before
	// either replaced its running file (spoke1's was valid), spoke3 (next
	// batch) is not touched; the hub, converged, changes nothing.
	before := map[string]string{}
	for _, h := range fleet.hosts {
		before[h.name] = h.mustExec(t, "cat /etc/dmvpnd/dmvpnd.yaml")
	}
	for _, h := range fleet.hosts[1:] {
		fleet.set(h.name, "log", map[string]any{"level": "warn"})
	}
	fleet.set(s2.name, "tunnel.mtu", 100) // outside 576..9000
	r = run("5-broken-spoke2", debs[v2])
	if r.exit == 0 {
		t.Fatalf("the rollout with a broken configuration on %s succeeded (%s)", s2.name, r.log)
	}
	if !strings.Contains(r.output, "fatal: ["+s2.name+"]") {
		t.Errorf("the rollout did not fail at %s (%s)", s2.name, r.log)
	}
	// spoke3 was reached (rollout.yml's first play) but no role task ran.
	if r.roleRan(s3.name) {
		t.Errorf("the rollout went on to %s after %s failed (%s)", s3.name, s2.name, r.log)
	}
	if c, ok := r.changed[hub.name]; !ok || c != 0 {
		t.Errorf("%s: the converged hub changed=%d (in recap: %t), want 0 (%s)", r.log, c, ok, hub.name)
	}
	for _, h := range fleet.hosts[1:] {
		if got := h.mustCtl(t, "log-level"); !strings.Contains(got, "info") {
			t.Errorf("%s: dmvpnctl log-level = %q, want info", h.name, got)
		}
	}
	for _, h := range fleet.hosts {
		if got := h.mustExec(t, "cat /etc/dmvpnd/dmvpnd.yaml"); got != before[h.name] {
			t.Errorf("%s: configuration file changed:\n%s", h.name, got)
		}
	}
	for _, h := range fleet.hosts {
		if st := h.mustStatus(t); !st.Ready {
			t.Errorf("%s after the stopped rollout: not ready: %+v", h.name, st)
		}
	}
}

// runningVersion is the version of the dmvpnd process running on h (the
// status API does not carry it): its executable's --version, refused when
// the file was replaced after it started (an upgrade without a restart).
func runningVersion(t *testing.T, h *labHost) string {
	t.Helper()
	out := h.mustExec(t, `exe=$(readlink /proc/$(cat /run/lab-systemd/dmvpnd.pid)/exe)
case "$exe" in *deleted*) echo "replaced: $exe"; exit 0;; esac
"$exe" --version | head -n 1`)
	v, ok := strings.CutPrefix(strings.TrimSpace(out), "dmvpnd ")
	if !ok {
		return strings.TrimSpace(out)
	}
	return v
}

// saveRolloutLogs copies each host's service logs (dmvpnd's, its charon's:
// the lab's systemctl keeps them in the host's private /run) to
// RUNDIR/nodes/NAME/.
func saveRolloutLogs(l *lab.Lab, hosts []*labHost) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range hosts {
		if h.root == nil {
			continue
		}
		_, _ = h.exec(ctx, fmt.Sprintf("mkdir -p %[1]s && cp /run/lab-systemd/*.log %[1]s/", shq(l.Dir()+"/nodes/"+h.name)))
	}
}

// startRolloutSSHD starts sshd in h's namespace inside a mount namespace of
// its own (privateRootScript) with an empty /root, a dpkg database holding
// only status (the entries of the package's dependency closure) and no
// apt indexes, and the lab's systemctl.
func startRolloutSSHD(t *testing.T, l *lab.Lab, h *labHost, sshDir, systemctl, status string) *lab.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conf := fmt.Sprintf(`ListenAddress %s
HostKey %[2]s/host_key
AuthorizedKeysFile %[2]s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PidFile none
Subsystem sftp internal-sftp
`, lab.HostNICAddr, sshDir)
	confPath := fmt.Sprintf("%s/sshd-%s.conf", sshDir, h.name)
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	inner := privateRootScript(l.Scratch()+"/hostfs/"+h.name, "") + fmt.Sprintf(`
mount -t tmpfs -o mode=0700 root /root
mount -t tmpfs -o mode=0755 dpkg /var/lib/dpkg
mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers
cp %[1]s /var/lib/dpkg/status
touch /var/lib/dpkg/available
sed -n 's/^Package: //p' /var/lib/dpkg/status | while read -r p; do : > /var/lib/dpkg/info/$p.list; done
mount -t tmpfs -o mode=0755 lists /var/lib/apt/lists
mkdir /var/lib/apt/lists/partial
mount -t tmpfs -o mode=0755 aptcache /var/cache/apt
cp %[2]s /usr/bin/systemctl
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f %[3]s`, status, systemctl, confPath)
	p, err := h.node.StartScript(ctx, "sshd", "exec unshare -m --propagation private sh -c "+shq(inner))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rolloutReadme is what deploy/README.md's fleet section gives an
// operator: the inventory and the rollout command.
type rolloutReadme struct {
	inventory map[string]any
	command   string
}

// readRolloutReadme reads the first yaml block and the ansible-playbook
// rollout command of README's "Fleet rollout with Ansible" section.
func readRolloutReadme(path string) (rolloutReadme, error) {
	var r rolloutReadme
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	_, section, ok := strings.Cut(string(b), "\n## Fleet rollout with Ansible\n")
	if !ok {
		return r, fmt.Errorf("%s: no section \"Fleet rollout with Ansible\"", path)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	_, block, ok := strings.Cut(section, "```yaml\n")
	if block, _, ok2 := strings.Cut(block, "```\n"); ok && ok2 {
		if err := yaml.Unmarshal([]byte(block), &r.inventory); err != nil {
			return r, fmt.Errorf("%s: inventory: %w", path, err)
		}
	} else {
		return r, fmt.Errorf("%s: no yaml block in the fleet section", path)
	}
	for line := range strings.SplitSeq(section, "\n") {
		if strings.HasPrefix(line, "ansible-playbook -i inventory.yml rollout.yml") {
			r.command = line
		}
	}
	if r.command == "" {
		return r, fmt.Errorf("%s: no rollout command (ansible-playbook -i inventory.yml rollout.yml ...)", path)
	}
	return r, nil
}

// rolloutFleet is README's inventory grown to a hub and N spokes, with the
// lab's connection settings.
type rolloutFleet struct {
	inv      map[string]any
	hosts    []*labHost // the hub first
	ssh      map[string]netip.AddrPort
	key      string // SSH client key
	pskVault string // the PSK, encrypted with ansible-vault
}

// newRolloutFleet takes README's inventory: its one hub and one spoke as
// written, and spokes 2..n made from the first with each address (NBMA,
// tunnel, LAN) one further.
func newRolloutFleet(readme map[string]any, n int) (*rolloutFleet, error) {
	b, err := yaml.Marshal(readme)
	if err != nil {
		return nil, err
	}
	var inv map[string]any // a deep copy
	if err := yaml.Unmarshal(b, &inv); err != nil {
		return nil, err
	}
	f := &rolloutFleet{inv: inv, ssh: map[string]netip.AddrPort{}}
	hubs, spokes := f.group("hubs"), f.group("spokes")
	if len(hubs) != 1 || len(spokes) != 1 {
		return nil, fmt.Errorf("README's inventory: %d hubs and %d spokes, want one of each", len(hubs), len(spokes))
	}
	var hubName, spokeName string
	for k := range hubs {
		hubName = k
	}
	for k := range spokes {
		spokeName = k
	}
	h, err := rolloutHost(hubName, hubs[hubName])
	if err != nil {
		return nil, err
	}
	f.hosts = append(f.hosts, h)
	first, err := rolloutHost(spokeName, spokes[spokeName])
	if err != nil {
		return nil, err
	}
	f.hosts = append(f.hosts, first)
	tmpl, err := yaml.Marshal(spokes[spokeName])
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(spokeName, "0123456789")
	for i := 2; i <= n; i++ {
		next := func(a netip.Addr) netip.Addr {
			for range i - 1 {
				a = a.Next()
			}
			return a
		}
		lanNet := first.lan.Masked()
		lanNext := netip.PrefixFrom(netip.AddrFrom4([4]byte{lanNet.Addr().As4()[0], lanNet.Addr().As4()[1], lanNet.Addr().As4()[2] + byte(i-1), 0}), lanNet.Bits())
		// The NBMA address is ansible_host and tunnel.local_nbma.
		text := string(tmpl)
		if strings.Count(text, first.nbma.String()) == 0 {
			return nil, fmt.Errorf("README's spoke: no %s", first.nbma)
		}
		text = strings.ReplaceAll(text, first.nbma.String(), next(first.nbma).String())
		text, err := replaceOnce(text,
			"address: "+first.tunnel.String()+"/", "address: "+next(first.tunnel).String()+"/",
			lanNet.String(), lanNext.String())
		if err != nil {
			return nil, fmt.Errorf("README's spoke as a template: %w", err)
		}
		var v map[string]any
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s%d", base, i)
		spokes[name] = v
		h, err := rolloutHost(name, v)
		if err != nil {
			return nil, err
		}
		f.hosts = append(f.hosts, h)
	}
	return f, nil
}

// group returns the hosts of an inventory group.
func (f *rolloutFleet) group(name string) map[string]any {
	all, _ := f.inv["all"].(map[string]any)
	children, _ := all["children"].(map[string]any)
	g, _ := children[name].(map[string]any)
	hosts, _ := g["hosts"].(map[string]any)
	return hosts
}

func (f *rolloutFleet) hostVars(name string) map[string]any {
	for _, g := range []string{"hubs", "spokes"} {
		if v, ok := f.group(g)[name].(map[string]any); ok {
			return v
		}
	}
	panic("no host " + name)
}

// set sets a dotted key of name's dmvpnd_config.
func (f *rolloutFleet) set(name, key string, value any) {
	m := f.hostVars(name)["dmvpnd_config"].(map[string]any)
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		m = m[p].(map[string]any)
	}
	m[parts[len(parts)-1]] = value
}

// render is the inventory with the lab's connection settings.
func (f *rolloutFleet) render() ([]byte, error) {
	all := f.inv["all"].(map[string]any)
	vars, _ := all["vars"].(map[string]any)
	if vars == nil {
		vars = map[string]any{}
		all["vars"] = vars
	}
	vars["ansible_user"] = "root"
	vars["ansible_become"] = false // root already; the hosts have no sudo
	vars["ansible_python_interpreter"] = "/usr/bin/python3"
	vars["ansible_ssh_private_key_file"] = f.key
	vars["ansible_ssh_common_args"] = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
	vars["vault_dmvpnd_psk"] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!vault", Style: yaml.LiteralStyle, Value: f.pskVault}
	for _, h := range f.hosts {
		v := f.hostVars(h.name)
		v["ansible_host"] = f.ssh[h.name].Addr().String()
		v["ansible_port"] = int(f.ssh[h.name].Port())
	}
	return yaml.Marshal(f.inv)
}

// rolloutHost reads a host's addresses from its dmvpnd_config.
func rolloutHost(name string, vars any) (*labHost, error) {
	var v struct {
		Config struct {
			Tunnel struct {
				LocalNBMA netip.Addr   `yaml:"local_nbma"`
				Address   netip.Prefix `yaml:"address"`
			} `yaml:"tunnel"`
			BGP struct {
				Prefixes []netip.Prefix `yaml:"prefixes"`
			} `yaml:"bgp"`
		} `yaml:"dmvpnd_config"`
	}
	b, err := yaml.Marshal(vars)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h := &labHost{name: name, nbma: v.Config.Tunnel.LocalNBMA, tunnel: v.Config.Tunnel.Address.Addr()}
	if !h.nbma.IsValid() || !h.tunnel.IsValid() {
		return nil, fmt.Errorf("%s: no tunnel.local_nbma or tunnel.address", name)
	}
	if len(v.Config.BGP.Prefixes) > 0 {
		p := v.Config.BGP.Prefixes[0].Masked()
		h.lan = netip.PrefixFrom(p.Addr().Next(), p.Bits())
	}
	return h, nil
}

// replaceOnce applies old, new pairs to s, each old occurring exactly once.
func replaceOnce(s string, oldnew ...string) (string, error) {
	for i := 0; i+1 < len(oldnew); i += 2 {
		if n := strings.Count(s, oldnew[i]); n != 1 {
			return "", fmt.Errorf("%q occurs %d times in %q, want once", oldnew[i], n, s)
		}
		s = strings.Replace(s, oldnew[i], oldnew[i+1], 1)
	}
	return s, nil
}

// vaultString encrypts value with ansible-vault and returns the ciphertext
// (what follows "!vault |").
func vaultString(passFile, value string) (string, error) {
	out, err := exec.Command("ansible-vault", "encrypt_string", "--vault-password-file", passFile, value).Output()
	if err != nil {
		return "", fmt.Errorf("ansible-vault: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "!vault") {
		return "", fmt.Errorf("ansible-vault: unexpected output %q", out)
	}
	var b strings.Builder
	for _, l := range lines[1:] {
		b.WriteString(strings.TrimSpace(l) + "\n")
	}
	return b.String(), nil
}

// rolloutRun is one ansible-playbook run.
type rolloutRun struct {
	exit    int
	output  string
	log     string         // where the output is saved
	changed map[string]int // PLAY RECAP changed= per host
}

var taskResultLine = regexp.MustCompile(`^\[\s*[0-9.]+s\] (ok|changed|skipping|failed|fatal): \[([^\]]+)\]`)

// taskResults is each host's result of the role's task named task in
// this run (ok, changed, skipping, failed, fatal); with task "", of any
// of the role's tasks (the last one).
func (r rolloutRun) taskResults(task string) map[string]string {
	out := map[string]string{}
	in := false
	for line := range strings.SplitSeq(r.output, "\n") {
		if _, head, ok := strings.Cut(line, "] TASK ["); ok {
			in = strings.HasPrefix(head, "dmvpnd : "+task) && (task == "" || strings.HasPrefix(head, "dmvpnd : "+task+"]"))
			continue
		}
		if m := taskResultLine.FindStringSubmatch(line); in && m != nil {
			out[m[2]] = m[1]
		}
	}
	return out
}

// roleRan reports whether any of the role's tasks ran on host.
func (r rolloutRun) roleRan(host string) bool {
	_, ok := r.taskResults("")[host]
	return ok
}

var recapLine = regexp.MustCompile(`^\[\s*[0-9.]+s\] (\S+)\s+: ok=\d+\s+changed=(\d+)`)

// stampWriter prefixes each line with the time since start ("[  12.3s] "),
// so a saved playbook output shows where the time went.
type stampWriter struct {
	w     io.Writer
	start time.Time
	mid   bool // within a line
}

func (s *stampWriter) Write(p []byte) (int, error) {
	var b []byte
	for _, c := range p {
		if !s.mid {
			b = fmt.Appendf(b, "[%6.1fs] ", time.Since(s.start).Seconds())
			s.mid = true
		}
		b = append(b, c)
		if c == '\n' {
			s.mid = false
		}
	}
	if _, err := s.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// mitogenStrategies is where Debian's ansible-mitogen puts its strategy
// plugins.
const mitogenStrategies = "/usr/lib/python3/dist-packages/ansible_mitogen/plugins/strategy"

// runPlaybook runs cmdline on the host in deploy/ansible with the mitogen
// strategy, its output saved in dir/NAME.log. It may run in a goroutine of
// its own (it only logs through t).
func runPlaybook(t *testing.T, root, dir, name, cmdline string) (rolloutRun, error) {
	if _, err := os.Stat(mitogenStrategies); err != nil {
		return rolloutRun{}, fmt.Errorf("ansible-mitogen (make deps): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	log := filepath.Join(dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return rolloutRun{}, err
	}
	defer f.Close()
	env := []string{"HOME=" + dir, "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_HOST_KEY_CHECKING=0",
		// Starting the remote Python under TCG on a loaded machine takes
		// longer than the default 10 s.
		"ANSIBLE_TIMEOUT=120", "ANSIBLE_STRATEGY_PLUGINS=" + mitogenStrategies, "ANSIBLE_STRATEGY=mitogen_linear"}
	fmt.Fprintf(f, "$ %s %s\n", strings.Join(env, " "), cmdline)
	cmd := exec.CommandContext(ctx, "sh", "-c", cmdline)
	cmd.Dir = filepath.Join(root, "deploy/ansible")
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	tw := &stampWriter{w: f, start: start}
	cmd.Stdout, cmd.Stderr = tw, tw
	err = cmd.Run()
	r := rolloutRun{log: log, changed: map[string]int{}}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	out, _ := os.ReadFile(log)
	r.output = string(out)
	t.Logf("timing: playbook %s %v, exit %d, output %s", name, time.Since(start).Round(time.Second), r.exit, log)
	recap := false
	sc := bufio.NewScanner(strings.NewReader(r.output))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "] PLAY RECAP") {
			recap = true
			continue
		}
		if m := recapLine.FindStringSubmatch(sc.Text()); recap && m != nil {
			n, _ := strconv.Atoi(m[2])
			r.changed[m[1]] += n
		}
	}
	return r, nil
}

// rolloutPackage builds dmvpnd and dmvpnctl with version v and packages
// them (deploy/package, as make package does); it returns the .deb's path.
// Packaging takes seconds to minutes on a loaded machine, so a package is
// kept under the hash of what it is made of (rolloutPackageKey) and
// reused while that is unchanged. .cache may be shared by several work
// trees testing at once: each build goes to a directory of its own and a
// package appears under its final name in one rename, so a test never
// installs a package another tree is writing or has replaced.
func rolloutPackage(root, v string) (string, error) {
	dir := filepath.Join(root, ".cache", "lab", "rollout", v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	const mod = "github.com/dmvpnd/dmvpnd/cmd/internal/version"
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X "+mod+".version="+v+" -X "+mod+".commit=lab",
		"-o", tmp+"/", "./cmd/dmvpnd", "./cmd/dmvpnctl")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", v, err, out)
	}
	key, err := rolloutPackageKey(root, tmp)
	if err != nil {
		return "", err
	}
	deb := filepath.Join(dir, "dmvpnd-"+key[:16]+".deb")
	if _, err := os.Stat(deb); err == nil {
		now := time.Now()
		return deb, os.Chtimes(deb, now, now) // in use: kept by rolloutPrune
	}
	pkg := exec.Command("go", "run", "./deploy/package", "-bin", tmp, "-root", root, "-version", v, "-out", tmp+"/dmvpnd.deb")
	pkg.Dir = root
	pkg.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000", "GOFLAGS=-buildvcs=false")
	if out, err := pkg.CombinedOutput(); err != nil {
		return "", fmt.Errorf("package %s: %v\n%s", v, err, out)
	}
	if err := os.Rename(tmp+"/dmvpnd.deb", deb); err != nil {
		return "", err
	}
	rolloutPrune(dir, 24*time.Hour)
	return deb, nil
}

// rolloutPrune removes the packages in dir that no test used for age.
func rolloutPrune(dir string, age time.Duration) {
	old, _ := filepath.Glob(filepath.Join(dir, "dmvpnd-*.deb"))
	for _, f := range old {
		if fi, err := os.Stat(f); err == nil && time.Since(fi.ModTime()) > age {
			_ = os.Remove(f)
		}
	}
}

// rolloutPackageKey hashes what a package is made of: the binaries in bin
// and the files deploy/package reads.
func rolloutPackageKey(root, bin string) (string, error) {
	files := []string{filepath.Join(bin, "dmvpnd"), filepath.Join(bin, "dmvpnctl"), filepath.Join(root, "deploy/README.md")}
	for _, pat := range []string{"deploy/package/*.go", "deploy/package/scripts/*", "deploy/package/lintian/*",
		"deploy/systemd/*", "deploy/sysctl/*", "deploy/examples/*"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		name := strings.TrimPrefix(f, root)
		if filepath.Dir(f) == bin {
			name = filepath.Base(f) // bin is a new directory each time
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rolloutDpkgStatus returns the host's dpkg status entries of deb's
// dependency closure (Depends and Pre-Depends, recursively, as installed).
func rolloutDpkgStatus(deb string) (string, error) {
	deps, err := exec.Command("dpkg-deb", "-f", deb, "Depends").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-deb -f Depends: %w", err)
	}
	args := []string{"depends", "--recurse", "--installed", "--no-recommends", "--no-suggests", "--no-conflicts",
		"--no-breaks", "--no-replaces", "--no-enhances"}
	for _, d := range strings.Split(string(deps), ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(d), " ")
		args = append(args, name)
	}
	out, err := exec.Command("apt-cache", args...).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends: %w", err)
	}
	pkgs := []string{}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "<") || seen[line] {
			continue
		}
		seen[line] = true
		pkgs = append(pkgs, line)
	}
	// apt-cache leaves out dependencies on NAME:any (perl:any): apt-get
	// check, on a state directory holding only the status, names them.
	dir, err := os.MkdirTemp("", "rollout-dpkg-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lists/partial", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	unmet := regexp.MustCompile(`Depends: ([^\s:(]+)(?::any)?(?: \([^)]*\))? but it is not installable`)
	for range 5 {
		// Alternatives not installed are listed too: keep the installed ones.
		w, _ := exec.Command("dpkg-query", append([]string{"-W", "-f", "${db:Status-Abbrev} ${Package}\n"}, pkgs...)...).Output()
		var installed []string
		for line := range strings.SplitSeq(string(w), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "ii" {
				installed = append(installed, f[1])
			}
		}
		st, err := exec.Command("dpkg-query", append([]string{"-s"}, installed...)...).Output()
		if err != nil {
			return "", fmt.Errorf("dpkg-query -s: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), st, 0o644); err != nil {
			return "", err
		}
		out, err := exec.Command("apt-get", "-o", "Dir::State::status="+dir+"/status", "-o", "Dir::State::Lists="+dir+"/lists",
			"-o", "Dir::Cache="+dir+"/cache", "check").CombinedOutput()
		if err == nil {
			return string(st), nil
		}
		more := unmet.FindAllStringSubmatch(string(out), -1)
		if len(more) == 0 {
			return "", fmt.Errorf("apt-get check on the package's dependencies: %v\n%s", err, out)
		}
		for _, m := range more {
			pkgs = append(pkgs, m[1])
		}
	}
	return "", fmt.Errorf("apt-get check: dependencies still unmet after 5 rounds")
}

// waitRegistered waits until the hub lists every spoke as UP.
func waitRegistered(t *testing.T, hub *labHost, spokes []*labHost) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last string
	err := lab.WaitFor(ctx, 500*time.Millisecond, func(ctx context.Context) error {
		res, err := hub.exec(ctx, "dmvpnctl --socket /run/dmvpnd/dmvpnd.sock show dmvpn --json")
		if err != nil || res.Exit != 0 {
			return fmt.Errorf("show dmvpn: exit %d %v", res.Exit, err)
		}
		last = string(res.Stdout)
		var v api.DMVPN
		if err := json.Unmarshal(res.Stdout, &v); err != nil {
			return err
		}
		for _, s := range spokes {
			p, ok := bgpPeer(v, s.tunnel)
			if !ok || p.State != api.PeerUp {
				return fmt.Errorf("hub: %s not UP", s.name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("registration: %v\n%s", err, last)
	}
}

// rolloutShortcut pings from a's LAN to b's and waits for a's shortcut
// route to b's LAN through b's tunnel address.
func rolloutShortcut(ctx context.Context, a, b *labHost) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	want := fmt.Sprintf("%s via %s", b.lan.Masked(), b.tunnel)
	var last string
	return lab.WaitFor(ctx, 300*time.Millisecond, func(ctx context.Context) error {
		_, _ = a.node.Exec(ctx, fmt.Sprintf("ping -n -c 2 -i 0.2 -W 1 -I %s %s", a.lan.Addr(), b.lan.Addr()))
		res, err := a.node.Run(ctx, "ip -4 route show proto 157")
		if err != nil {
			return err
		}
		last = string(res.Stdout)
		if strings.Contains(last, want) {
			return nil
		}
		return fmt.Errorf("%s: no shortcut %q in proto 157 routes:\n%s", a.name, want, last)
	})
}

// TestRolloutFleet checks, without a lab, the fleet TestAnsibleRollout
// makes of README's inventory, and that Ansible reads it with the vaulted
// PSK decrypted.
func TestRolloutFleet(t *testing.T) {
	readme, err := readRolloutReadme("../deploy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := newRolloutFleet(readme.inventory, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range f.hosts {
		got = append(got, fmt.Sprintf("%s %s %s %s", h.name, h.nbma, h.tunnel, h.lan))
		f.ssh[h.name] = netip.MustParseAddrPort("127.0.0.1:2222")
	}
	want := []string{
		"hub1 192.0.2.1 10.0.0.1 invalid Prefix",
		"spoke1 198.51.100.11 10.0.0.11 192.168.11.1/24",
		"spoke2 198.51.100.12 10.0.0.12 192.168.12.1/24",
		"spoke3 198.51.100.13 10.0.0.13 192.168.13.1/24",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hosts (-want +got):\n%s", d)
	}
	if _, err := exec.LookPath("ansible-inventory"); err != nil {
		t.Skip("no ansible-inventory (make deps)")
	}
	dir := t.TempDir()
	pass := dir + "/pass"
	if err := os.WriteFile(pass, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.pskVault, err = vaultString(pass, "the-psk"); err != nil {
		t.Fatal(err)
	}
	f.set("spoke2", "tunnel.mtu", 100)
	inv, err := f.render()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/inv.yml", inv, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ansible", "-i", dir+"/inv.yml", "--vault-password-file", pass, "spoke2", "-m", "debug",
		"-a", `msg="{{ dmvpnd_psk }} {{ dmvpnd_config.tunnel.mtu }} {{ dmvpnd_config.tunnel.local_nbma }} {{ ansible_port }}"`).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"msg": "the-psk 100 198.51.100.12 2222"`) {
		t.Errorf("ansible debug: %v\n%s\ninventory:\n%s", err, out, inv)
	}
}
