package routing_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
	"github.com/google/go-cmp/cmp"
)

// gobgpCLIs returns the gobgp CLI binaries to test against: $DMVPND_GOBGP_CLI,
// Debian's /usr/bin/gobgp, and one built from the module version in go.mod
// (only when a Go toolchain is available, i.e. not inside the lab guest).
func gobgpCLIs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if p := os.Getenv("DMVPND_GOBGP_CLI"); p != "" {
		out["env"] = p
	}
	if _, err := os.Stat("/usr/bin/gobgp"); err == nil {
		out["debian"] = "/usr/bin/gobgp"
	}
	if goBin, err := exec.LookPath("go"); err == nil && os.Getenv("DMVPND_SKIP_CLI_BUILD") == "" {
		bin := filepath.Join(t.TempDir(), "gobgp")
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/osrg/gobgp/v3/cmd/gobgp")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Logf("building gobgp CLI from the module failed (subtest skipped): %v\n%s", err, b)
		} else {
			out["module"] = bin
		}
	}
	if len(out) == 0 {
		t.Skip("no gobgp CLI: install Debian's gobgpd or set DMVPND_GOBGP_CLI")
	}
	return out
}

func runCLI(ctx context.Context, t *testing.T, bin string, target []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, append(target, args...)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// neighborRows extracts "peer AS state" from "gobgp neighbor" output, sorted.
func neighborRows(out string) []string {
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		if _, err := netip.ParseAddr(f[0]); err != nil {
			continue
		}
		rows = append(rows, f[0]+" "+f[1]+" "+f[3])
	}
	slices.Sort(rows) // gobgp orders neighbors by session age
	return rows
}

// ribRows extracts "network nexthop" from "gobgp global rib" / "adj-in" output.
func ribRows(out string) []string {
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if _, err := netip.ParsePrefix(f[i]); err != nil {
				continue
			}
			if _, err := netip.ParseAddr(f[i+1]); err == nil {
				rows = append(rows, f[i]+" "+f[i+1])
			}
			break
		}
	}
	return rows
}

func TestGobgpCLI(t *testing.T) {
	clis := gobgpCLIs(t)
	ctx := testCtx(t)
	sock := filepath.Join(t.TempDir(), "gobgp.sock")
	tcpAPI := netip.AddrPortFrom(addr("127.0.0.1"), uint16(freePort(t, addr("127.0.0.1"))))

	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.API = "unix://" + sock
	hub := startNode(t, "hub", hcfg)
	var spokes []*node
	for i := range spokeAddrs {
		cfg := spokeConfig(i, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
		if i == 0 {
			cfg.API = tcpAPI.String()
		}
		spokes = append(spokes, startNode(t, fmt.Sprintf("spoke%d", i), cfg))
	}
	hub.waitEstablished(ctx, t, spokeAddrs...)
	hub.waitRoutes(ctx, t, expectedHub())
	spokes[0].waitRoutes(ctx, t, expectedReflect(0))

	hubTarget := []string{"--target", "unix://" + sock}
	spokeTarget := []string{"-u", tcpAPI.Addr().String(), "-p", fmt.Sprint(tcpAPI.Port())}
	for name, bin := range clis {
		t.Run(name, func(t *testing.T) {
			t.Logf("%s: %s", bin, strings.TrimSpace(runCLI(ctx, t, bin, nil, "--version")))

			out := runCLI(ctx, t, bin, hubTarget, "neighbor")
			t.Logf("gobgp neighbor (hub):\n%s", out)
			var want []string
			for _, a := range spokeAddrs {
				want = append(want, fmt.Sprintf("%s %d Establ", a, hubAS))
			}
			if diff := cmp.Diff(want, neighborRows(out)); diff != "" {
				t.Errorf("gobgp neighbor (-want +got):\n%s", diff)
			}

			out = runCLI(ctx, t, bin, hubTarget, "global", "rib")
			t.Logf("gobgp global rib (hub):\n%s", out)
			want = []string{hubLAN.String() + " 0.0.0.0"}
			for i, a := range spokeAddrs {
				want = append(want, fmt.Sprintf("%s %s", spokeLAN(i), a))
			}
			if diff := cmp.Diff(want, ribRows(out)); diff != "" {
				t.Errorf("gobgp global rib (-want +got):\n%s", diff)
			}

			out = runCLI(ctx, t, bin, hubTarget, "neighbor", spokeAddrs[1].String(), "adj-in")
			t.Logf("gobgp neighbor %s adj-in (hub):\n%s", spokeAddrs[1], out)
			if diff := cmp.Diff([]string{spokeLAN(1).String() + " " + spokeAddrs[1].String()}, ribRows(out)); diff != "" {
				t.Errorf("adj-in (-want +got):\n%s", diff)
			}

			// A spoke over TCP: the reflected routes keep the other spokes' next hops.
			out = runCLI(ctx, t, bin, spokeTarget, "global", "rib")
			t.Logf("gobgp global rib (spoke0):\n%s", out)
			want = []string{
				hubLAN.String() + " " + hubAddr.String(),
				spokeLAN(0).String() + " 0.0.0.0",
				spokeLAN(1).String() + " " + spokeAddrs[1].String(),
				spokeLAN(2).String() + " " + spokeAddrs[2].String(),
			}
			if diff := cmp.Diff(want, ribRows(out)); diff != "" {
				t.Errorf("spoke global rib (-want +got):\n%s", diff)
			}

			// The API is read-only: injecting a route is refused, clearly.
			cmd := exec.CommandContext(ctx, bin, append(hubTarget, "global", "rib", "add", "192.168.99.0/24", "nexthop", spokeAddrs[0].String())...)
			b, err := cmd.CombinedOutput()
			t.Logf("gobgp global rib add (hub): %v\n%s", err, b)
			if err == nil || !strings.Contains(string(b), routing.ErrAPIReadOnly) {
				t.Errorf("global rib add: err %v, output %q; want refusal %q", err, b, routing.ErrAPIReadOnly)
			}
			if out := runCLI(ctx, t, bin, hubTarget, "global", "rib"); strings.Contains(out, "192.168.99.0") {
				t.Errorf("refused route in the hub's RIB:\n%s", out)
			}
		})
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("api socket mode: %v, %v; want 0660", fi.Mode(), err)
	}
}
