// Package agent is the lab's command executor. In the VM it runs as a small
// static binary (see labagent) that serves framed JSON requests over a
// virtio-serial port; in native mode the host runs the same Execute function
// directly. Keeping one executor means both modes have the same semantics:
// commands run under /bin/sh -c in their own process group, bounded by a
// timeout that kills the whole group.
package agent
