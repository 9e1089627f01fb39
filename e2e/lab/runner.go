package lab

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/dmvpnd/dmvpnd/e2e/lab/agent"
)

// Mode says where a lab runs its topology.
type Mode string

const (
	// ModeVM runs everything in a qemu guest booted from the Debian kernel.
	ModeVM Mode = "vm"
	// ModeNative runs namespaces directly on the host; it needs a kernel
	// with ip_gre and esp4, and root.
	ModeNative Mode = "native"
)

// Runner executes shell commands where the lab's namespaces live: inside the
// guest (VM mode) or on the host (native mode). Both implementations share
// the agent's executor, so commands behave the same.
type Runner interface {
	Mode() Mode
	Exec(ctx context.Context, req agent.Request) (agent.Response, error)
	Close() error
}

// nativeRunner runs commands on the host.
type nativeRunner struct{}

func (nativeRunner) Mode() Mode { return ModeNative }

func (nativeRunner) Exec(ctx context.Context, req agent.Request) (agent.Response, error) {
	if err := ctx.Err(); err != nil {
		return agent.Response{}, fmt.Errorf("lab: %w", err)
	}
	resp := agent.Execute(ctx, req)
	if resp.Err != "" && !resp.TimedOut && ctx.Err() != nil {
		return resp, fmt.Errorf("lab: %q: %w", req.Cmd, ctx.Err())
	}
	return resp, nil
}

func (nativeRunner) Close() error { return nil }

// vmRunner runs commands in the guest through the agent.
type vmRunner struct{ v *vm }

func (r vmRunner) Mode() Mode { return ModeVM }

func (r vmRunner) Exec(ctx context.Context, req agent.Request) (agent.Response, error) {
	return r.v.run(ctx, req)
}

func (r vmRunner) Close() error { r.v.stop(); return nil }

// nativeProbeScript checks, in a throw-away namespace, that the host kernel
// can create a GRE tunnel and an ESP state: what the lab's scenarios need.
// It exits non-zero naming the first missing feature.
const nativeProbeScript = `set -u
ns=dmvpnd-probe-$$
ip netns add "$ns" || { echo "no network namespaces"; exit 2; }
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link add p0 type gre local 192.0.2.1 remote 192.0.2.2 key 1 2>/dev/null || { echo "no ip_gre"; exit 3; }
ip -n "$ns" xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode transport aead 'rfc4106(gcm(aes))' 0x0102030405060708091011121314151617181920 128 2>/dev/null || { echo "no esp4"; exit 4; }
echo ok
`

// chooseMode resolves the lab mode: an explicit want ("vm", "native") wins,
// then the DMVPND_LAB environment variable, then a probe of the host kernel.
// probe runs nativeProbeScript and reports whether native mode works.
func chooseMode(want string, probe func() error) (Mode, string, error) {
	if want == "" {
		want = os.Getenv("DMVPND_LAB")
	}
	switch strings.ToLower(want) {
	case "vm":
		return ModeVM, "forced", nil
	case "native":
		return ModeNative, "forced", nil
	case "", "auto":
	default:
		return "", "", fmt.Errorf("lab: unknown lab mode %q (want vm, native or auto)", want)
	}
	if os.Geteuid() != 0 {
		return ModeVM, "not root", nil
	}
	if err := probe(); err != nil {
		return ModeVM, "host kernel: " + err.Error(), nil
	}
	return ModeNative, "host kernel has ip_gre and esp4", nil
}

// probeNative runs the native probe on the host.
func probeNative(ctx context.Context) error {
	resp := agent.Execute(ctx, agent.Request{Cmd: nativeProbeScript})
	if resp.Exit != 0 {
		msg := strings.TrimSpace(string(resp.Stdout))
		if msg == "" {
			msg = fmt.Sprintf("probe exit %d %s", resp.Exit, resp.Err)
		}
		return fmt.Errorf("lab: native probe: %s", msg)
	}
	return nil
}
