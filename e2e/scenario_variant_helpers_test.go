package e2e

// The scenario fixture's variants: a scenario that proves one behaviour
// over plain GRE and over IPsec runs each variant as a subtest on one lab
// (one boot, one topology), every dmvpnd and charon started afresh and
// the nodes' tunnel state removed in between (scRunVariant).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// scIPsec is how a scenario's nodes protect their GRE.
type scIPsec int

const (
	// scIPsecNone is plain GRE: no charon, no ipsec section.
	scIPsecNone scIPsec = iota
	// scIPsecPSK is IKEv2 with the lab's group pre-shared key, each node
	// with its own charon that dmvpnd drives over VICI.
	scIPsecPSK
	// scIPsecX509 is IKEv2 with certificates from a throw-away CA, the
	// node's NBMA address as IP SAN.
	scIPsecX509
	// scIPsecX509Bound is X.509 with ipsec.auth.bind_tunnel_address:
	// certificates carry the tunnel address as a second IP SAN, and each
	// node authenticates with it.
	scIPsecX509Bound
)

// scRun is one variant of a scenario running on a shared lab.
type scRun struct {
	l     *lab.Lab
	name  string
	ipsec scIPsec
	nodes []*dnode
	// charons are the variant's charons by node (nil with scIPsecNone).
	charons map[*dnode]*lab.Charon
}

// protected reports whether the variant runs IPsec.
func (r *scRun) protected() bool { return r.ipsec != scIPsecNone }

// scRunVariant runs body as the subtest name of t on l's nodes (not
// started): with IPsec, every node first gets its own charon (named after
// the variant) and its ipsec section. Afterwards every dmvpnd and charon
// is stopped and each node's gre1 (and with it its routes and neighbours),
// XFRM states and policies and nftables ruleset removed, and each node's
// settings restored, so the next variant starts as on a fresh boot. It
// reports false when the variant failed, leaving its state for the lab's
// failure dump (the caller runs no further variant), or when the clean-up
// failed.
func scRunVariant(t *testing.T, l *lab.Lab, nodes []*dnode, name string, mode scIPsec, body func(*testing.T, *scRun)) bool {
	t.Helper()
	saved := make([]dnode, len(nodes))
	for i, d := range nodes {
		saved[i] = *d
		d.variant = name
	}
	r := &scRun{l: l, name: name, ipsec: mode, nodes: nodes}
	if !t.Run(name, func(t *testing.T) {
		r.charons = ipdStartCharonsAuth(t, l, mode, name, nodes...)
		body(t, r)
	}) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.reset(ctx); err != nil {
		t.Errorf("after variant %s: %v", name, err)
		return false
	}
	for i, d := range nodes {
		*d = saved[i]
	}
	return true
}

// reset stops the variant's daemons and removes what they left in the
// nodes' kernels.
func (r *scRun) reset(ctx context.Context) error {
	var errs []error
	for _, d := range r.nodes {
		if d.proc != nil {
			errs = append(errs, d.proc.Stop(ctx))
		}
	}
	for _, c := range r.charons {
		errs = append(errs, c.Proc.Stop(ctx))
	}
	for _, d := range r.nodes {
		_, err := d.node.Run(ctx, "{ ! ip link show gre1 >/dev/null 2>&1 || ip link del gre1; } && ip xfrm state flush && ip xfrm policy flush && nft flush ruleset")
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
