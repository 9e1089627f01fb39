// Package e2e holds the project's end-to-end scenarios. They run in the lab
// of package e2e/lab (a qemu guest with a Debian kernel, or the host's own
// network namespaces when its kernel has ip_gre and esp4) and are skipped
// unless DMVPND_LAB_TESTS=1; see README.md in this directory.
package e2e
