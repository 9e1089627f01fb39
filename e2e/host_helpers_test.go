package e2e

// Helpers for scenarios that treat a lab node as a host of its own, with
// packages installed and files under /etc: TestAnsibleRollout (over SSH)
// and TestDebInstall (the .deb).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// labHost is one lab node with a private root filesystem: the network
// namespace of its node and the mount namespace of root, a process started
// with privateRootScript (sshd in TestAnsibleRollout).
type labHost struct {
	name   string
	nbma   netip.Addr
	tunnel netip.Addr
	lan    netip.Prefix
	l      *lab.Lab
	node   *lab.Node
	root   *lab.Proc
}

// exec runs cmd in the host's network and mount namespaces (as its sshd
// sessions see them).
func (h *labHost) exec(ctx context.Context, cmd string) (lab.Result, error) {
	return h.l.Exec(ctx, fmt.Sprintf("nsenter -t %d -m -n -- sh -c %s", h.root.PID, shq(cmd)))
}

func (h *labHost) mustExec(t *testing.T, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := h.exec(ctx, cmd)
	if err != nil || res.Exit != 0 {
		t.Fatalf("%s: %s: exit %d %v\n%s%s", h.name, cmd, res.Exit, err, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

func (h *labHost) mustCtl(t *testing.T, args string) string {
	t.Helper()
	return h.mustExec(t, "dmvpnctl --socket /run/dmvpnd/dmvpnd.sock "+args)
}

func (h *labHost) mustStatus(t *testing.T) api.Status {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(h.mustCtl(t, "status --json")), &st); err != nil {
		t.Fatalf("%s: status: %v", h.name, err)
	}
	return st
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// privateRootScript renders the shell lines (run under unshare -m) that give
// a process a root of its own: writable overlays on /etc, /usr, /var and
// /root whose upper layers live on a tmpfs at fsRoot (mounted unless
// fsRoot already is a mount point: one mounted outside outlives the mount
// namespace, with what was written to it), and an empty /run
// (so that no package script sees the lab's systemd, if any). With lower
// set, lower/DIR.up (the upper layers of an earlier private root, e.g. one
// a package was installed into) lies between each upper layer and the
// lab's own directory.
func privateRootScript(fsRoot, lower string) string {
	lowers := "/$d"
	if lower != "" {
		lowers = lower + "/$d.up:/$d"
	}
	return fmt.Sprintf(`set -e
mkdir -p %[1]s
mountpoint -q %[1]s || mount -t tmpfs -o mode=0755 hostfs %[1]s
for d in etc usr var root; do
	mkdir -p %[1]s/$d.up %[1]s/$d.work
	mount -t overlay overlay -o lowerdir=%[2]s,upperdir=%[1]s/$d.up,workdir=%[1]s/$d.work /$d
done
mount -t tmpfs -o mode=0755 run /run`, fsRoot, lowers)
}
